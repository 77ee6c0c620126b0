import Guacamole from 'guacamole-common-js';
import { api } from '../api';
import { field, formatDuration, h, icon, replace } from '../dom';
import { currentRender, onLeave, requireUser, shell } from '../main';

interface PlayerHook { seeking: boolean; loaded: boolean; duration: number; position: number; playing: boolean; speed: number; error: string; display: Guacamole.Display | null }
declare global { interface Window { __guacrPlayer?: PlayerHook } }

/**
 * A read-only Guacamole.Tunnel over a downloaded recording. guacamole-common-js 1.5.0's
 * SessionRecording cannot read a Blob source (it never keeps the Blob it is given), but it
 * reads tunnels correctly: this one parses the file in slices and closes when done.
 */
interface TypedLine { at: number; text: string }

/** Rebuilds the typed text (one entry per line, with the time it was started) from `key` events. */
class TypedText {
  lines: TypedLine[] = [];
  private first = -1;
  private last = 0;
  sync(ts: number): void {
    if (this.first < 0) this.first = ts;
    this.last = ts - this.first;
  }
  key(keysym: number, pressed: boolean, ts: number): void {
    if (!pressed) return;
    if (ts > 0 && this.first >= 0) this.last = Math.max(0, ts - this.first);
    let cur = this.lines[this.lines.length - 1];
    const start = () => { cur = { at: this.last, text: '' }; this.lines.push(cur); return cur; };
    if (keysym === 0xFF0D || keysym === 0xFF8D) { if (!cur) start(); start(); return; }
    if (keysym === 0xFF08) { if (cur) cur.text = [...cur.text].slice(0, -1).join(''); return; }
    if (keysym === 0xFF09) { (cur ?? start()).text += '\t'; return; }
    let ch = '';
    if ((keysym >= 0x20 && keysym <= 0x7E) || (keysym >= 0xA0 && keysym <= 0xFF)) ch = String.fromCodePoint(keysym);
    else if ((keysym & 0xFF000000) === 0x01000000) ch = String.fromCodePoint(keysym & 0x00FFFFFF);
    if (ch) (cur ?? start()).text += ch;
  }
}

function recordingTunnel(blob: Blob, typed: TypedText): Guacamole.Tunnel {
  let stopped = false;
  const t: Guacamole.Tunnel = {
    state: 0,
    uuid: null,
    onerror: null,
    onstatechange: null,
    onuuid: null,
    oninstruction: null,
    isConnected: () => t.state === 1,
    sendMessage: () => { /* nothing to send to a file */ },
    disconnect: () => { stopped = true; },
    connect: () => {
      const setState = (s: number) => { t.state = s; t.onstatechange?.(s); };
      setState(1);
      void (async () => {
        try {
          const text = await blob.text();
          const parser = new Guacamole.Parser();
          parser.oninstruction = (op, args) => {
            if (op === 'sync') typed.sync(Number(args[0]) || 0);
            else if (op === 'key') typed.key(Number(args[0]) || 0, args[1] === '1', Number(args[2]) || 0);
            t.oninstruction?.(op, args);
          };
          const SLICE = 256 * 1024;
          for (let i = 0; i < text.length && !stopped;) {
            let end = Math.min(text.length, i + SLICE);
            // Never split a surrogate pair between two slices.
            const c = text.charCodeAt(end - 1);
            if (end < text.length && c >= 0xD800 && c <= 0xDBFF) end--;
            parser.receive(text.slice(i, end));
            i = end;
            await new Promise((r) => setTimeout(r, 0));
          }
        } catch (e) {
          t.onerror?.({ code: 0x0300, message: e instanceof Error ? e.message : String(e), isError: () => true });
        }
        setState(2);
      })();
    },
  };
  return t;
}

export async function renderPlayer(name: string): Promise<void> {
  const seq = currentRender();
  if (!(await requireUser(true)) || seq !== currentRender()) return;
  const main = shell(`Recording ${name}`, 'admin');
  const hook: PlayerHook = { seeking: false, loaded: false, duration: 0, position: 0, playing: false, speed: 1, error: '', display: null };
  window.__guacrPlayer = hook;

  const stage = h('div', { class: 'player-stage', id: 'player-stage', 'aria-label': 'Recording playback' });
  const status = h('p', { class: 'muted', role: 'status', id: 'player-status' }, 'Loading the recording…');
  const playBtn = h('button', { type: 'button', class: 'btn btn-primary', id: 'player-play', disabled: true, 'aria-label': 'Play' }, icon('play'));
  const seek = h('input', { type: 'range', min: '0', max: '0', step: '1', value: '0', id: 'player-seek', 'aria-label': 'Position', disabled: true });
  const time = h('span', { class: 'mono player-time', id: 'player-time' }, '0:00 / 0:00');
  const speed = h('select', { id: 'player-speed' }, ['0.5', '1', '2', '4', '8', '16'].map((s) => h('option', { value: s }, `${s}×`)));
  speed.value = '1';
  const keys = h('pre', { class: 'keylog', id: 'player-keys', tabindex: '0', 'aria-label': 'Key log' }, 'Loading…');
  const typedBox = h('ol', { class: 'typed', id: 'player-typed', 'aria-label': 'Typed text' });
  const tabKeys = h('button', { type: 'button', class: 'tab active', 'aria-pressed': 'true', id: 'tab-typed' }, 'Typed text');
  const tabLog = h('button', { type: 'button', class: 'tab', 'aria-pressed': 'false', id: 'tab-keylog' }, 'Key log');
  const showTab = (typedTab: boolean) => {
    typedBox.hidden = !typedTab;
    keys.hidden = typedTab;
    tabKeys.classList.toggle('active', typedTab);
    tabLog.classList.toggle('active', !typedTab);
    tabKeys.setAttribute('aria-pressed', String(typedTab));
    tabLog.setAttribute('aria-pressed', String(!typedTab));
  };
  tabKeys.addEventListener('click', () => showTab(true));
  tabLog.addEventListener('click', () => showTab(false));
  keys.hidden = true;
  main.append(
    h('div', { class: 'page-head' }, h('h1', null, 'Recording'), h('a', { class: 'btn', href: '#/admin/recordings' }, 'All recordings')),
    h('p', { class: 'mono muted' }, name),
    h('div', { class: 'player' },
      h('div', { class: 'player-main' }, stage,
        h('div', { class: 'player-controls' }, playBtn, seek, time, field('Speed', speed)),
        status),
      h('aside', { class: 'player-side card', 'aria-labelledby': 'keys-title' }, h('h2', { id: 'keys-title' }, 'Keystrokes'),
        h('div', { class: 'tabs tabs-small' }, tabKeys, tabLog), typedBox, keys)));

  void api.recordingKeys(name).then((k) => { keys.textContent = k.keys || '(no key events recorded)'; })
    .catch((e: Error) => { keys.textContent = `Key log unavailable: ${e.message}`; });

  let blob: Blob;
  try {
    blob = await api.recordingBlob(name);
  } catch (e) {
    status.textContent = (e as Error).message;
    status.setAttribute('role', 'alert');
    hook.error = (e as Error).message;
    return;
  }
  if (seq !== currentRender()) return; // the user went elsewhere while it downloaded
  const typed = new TypedText();
  const rec = new Guacamole.SessionRecording(recordingTunnel(blob, typed));
  const display = rec.getDisplay();
  hook.display = display;
  const el = display.getElement();
  el.classList.add('display');
  stage.appendChild(el);

  let playing = false;
  let timer = 0;
  let seeking = false;
  let left = false;
  const fitDisplay = () => {
    const w = display.getWidth();
    const hh = display.getHeight();
    if (!w || !hh) return;
    display.scale(Math.min(1, stage.clientWidth / w, (window.innerHeight * 0.7) / hh));
  };
  display.onresize = fitDisplay;
  window.addEventListener('resize', fitDisplay);

  // Playback at speed != 1 runs its own clock: seeking into an idle stretch lands on the
  // frame before it, so the recording's position alone would never get past the gap.
  let virt = -1;
  const paint = () => {
    hook.position = playing && hook.speed !== 1 && virt >= 0 ? virt : rec.getPosition();
    hook.duration = rec.getDuration();
    hook.playing = playing;
    seek.max = String(hook.duration);
    if (!seeking) seek.value = String(hook.position);
    time.textContent = `${formatDuration(hook.position)} / ${formatDuration(hook.duration)}`;
    replace(playBtn, icon(playing ? 'pause' : 'play'));
    playBtn.setAttribute('aria-label', playing ? 'Pause' : 'Play');
  };

  const stopTimer = () => { window.clearInterval(timer); timer = 0; };
  // SessionRecording.pause()/play() abort a seek in progress without calling its callback:
  // every seek gets an id, and pausing forgets the pending one.
  let seekId = 0;
  const doSeek = (ms: number, after?: () => void) => {
    const id = ++seekId;
    seeking = true;
    hook.seeking = true;
    rec.seek(Math.max(0, Math.min(ms, rec.getDuration())), () => {
      if (id !== seekId) return;
      seeking = false;
      hook.seeking = false;
      paint();
      after?.();
    });
  };
  const halt = () => { virt = -1; stopTimer(); seekId++; seeking = false; hook.seeking = false; rec.pause(); };
  const tick = () => {
    if (seeking) return;
    if (virt < 0) virt = rec.getPosition();
    virt = Math.min(rec.getDuration(), virt + 100 * hook.speed);
    const target = virt;
    doSeek(target, () => {
      if (target >= rec.getDuration()) { playing = false; stopTimer(); paint(); }
    });
  };
  const play = () => {
    halt();
    playing = true;
    const go = () => {
      if (!playing) return;
      if (hook.speed === 1) rec.play();
      else timer = window.setInterval(tick, 100);
      paint();
    };
    if (rec.getPosition() >= rec.getDuration()) doSeek(0, go); else go();
  };
  const pause = () => { playing = false; halt(); paint(); };

  playBtn.addEventListener('click', () => (playing ? pause() : play()));
  speed.addEventListener('change', () => {
    hook.speed = Number(speed.value) || 1;
    if (playing) play();
  });
  function jump(ms: number): void {
    const wasPlaying = playing;
    if (playing) { halt(); playing = false; }
    doSeek(ms, () => { if (wasPlaying) play(); });
  }
  seek.addEventListener('input', () => jump(Number(seek.value)));
  // Space plays/pauses, arrows step 5 s (when not typing in a field).
  const onKey = (e: KeyboardEvent) => {
    const tag = (e.target as HTMLElement | null)?.tagName;
    if (!hook.loaded || tag === 'INPUT' || tag === 'SELECT' || tag === 'TEXTAREA' || tag === 'BUTTON') return;
    if (e.key === ' ') { e.preventDefault(); if (playing) pause(); else play(); }
    else if (e.key === 'ArrowRight') jump(rec.getPosition() + 5000);
    else if (e.key === 'ArrowLeft') jump(Math.max(0, rec.getPosition() - 5000));
  };
  window.addEventListener('keydown', onKey);
  rec.onplay = () => { paint(); };
  rec.onpause = () => {
    // Real-time playback reached the end on its own.
    if (hook.speed === 1 && playing && rec.getPosition() >= rec.getDuration()) playing = false;
    paint();
  };
  rec.onseek = () => paint();
  rec.onprogress = (duration) => { hook.duration = duration; paint(); };
  rec.onerror = (message) => { status.textContent = `The recording cannot be played: ${message}`; status.setAttribute('role', 'alert'); hook.error = message; };
  rec.onload = () => {
    hook.loaded = true;
    playBtn.disabled = false;
    seek.disabled = false;
    status.textContent = `Ready · ${formatDuration(rec.getDuration())}`;
    const lines = typed.lines.filter((l) => l.text.trim());
    replace(typedBox, lines.length ? lines.map((l) => h('li', null,
      h('button', { type: 'button', class: 'typed-line', title: 'Jump here', onclick: () => jump(l.at) },
        h('span', { class: 'mono muted' }, formatDuration(l.at)), ' ', h('span', { class: 'mono' }, l.text))))
      : h('li', { class: 'muted' }, 'No keystrokes in this recording (recording-include-keys was off).'));
    // Show the first frame.
    rec.seek(0, () => { fitDisplay(); paint(); });
  };
  const raf = () => { if (left) return; if (playing && hook.speed === 1) paint(); requestAnimationFrame(raf); };
  requestAnimationFrame(raf);
  rec.connect();

  onLeave(() => {
    left = true;
    stopTimer();
    try { rec.pause(); rec.abort(); } catch { /* gone */ }
    window.removeEventListener('resize', fitDisplay);
    window.removeEventListener('keydown', onKey);
    if (window.__guacrPlayer === hook) delete window.__guacrPlayer;
  });
}
