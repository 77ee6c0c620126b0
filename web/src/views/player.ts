import Guacamole from 'guacamole-common-js';
import { api } from '../api';
import { field, formatDuration, h, icon, replace } from '../dom';
import { onLeave, requireUser, shell } from '../main';

interface PlayerHook { loaded: boolean; duration: number; position: number; playing: boolean; speed: number; error: string; display: Guacamole.Display | null }
declare global { interface Window { __guacrPlayer?: PlayerHook } }

/**
 * A read-only Guacamole.Tunnel over a downloaded recording. guacamole-common-js 1.5.0's
 * SessionRecording cannot read a Blob source (it never keeps the Blob it is given), but it
 * reads tunnels correctly: this one parses the file in slices and closes when done.
 */
function recordingTunnel(blob: Blob): Guacamole.Tunnel {
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
          parser.oninstruction = (op, args) => t.oninstruction?.(op, args);
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
  if (!(await requireUser(true))) return;
  const main = shell(`Recording ${name}`, 'admin');
  const hook: PlayerHook = { loaded: false, duration: 0, position: 0, playing: false, speed: 1, error: '', display: null };
  window.__guacrPlayer = hook;

  const stage = h('div', { class: 'player-stage', id: 'player-stage', 'aria-label': 'Recording playback' });
  const status = h('p', { class: 'muted', role: 'status', id: 'player-status' }, 'Loading the recording…');
  const playBtn = h('button', { type: 'button', class: 'btn btn-primary', id: 'player-play', disabled: true, 'aria-label': 'Play' }, icon('play'));
  const seek = h('input', { type: 'range', min: '0', max: '0', step: '1', value: '0', id: 'player-seek', 'aria-label': 'Position', disabled: true });
  const time = h('span', { class: 'mono player-time', id: 'player-time' }, '0:00 / 0:00');
  const speed = h('select', { id: 'player-speed' }, ['0.5', '1', '2', '4', '8', '16'].map((s) => h('option', { value: s }, `${s}×`)));
  speed.value = '1';
  const keys = h('pre', { class: 'keylog', id: 'player-keys', tabindex: '0', 'aria-label': 'Key log' }, 'Loading…');
  main.append(
    h('div', { class: 'page-head' }, h('h1', null, 'Recording'), h('a', { class: 'btn', href: '#/admin/recordings' }, 'All recordings')),
    h('p', { class: 'mono muted' }, name),
    h('div', { class: 'player' },
      h('div', { class: 'player-main' }, stage,
        h('div', { class: 'player-controls' }, playBtn, seek, time, field('Speed', speed)),
        status),
      h('aside', { class: 'player-side card', 'aria-labelledby': 'keys-title' }, h('h2', { id: 'keys-title' }, 'Keystrokes'), keys)));

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
  const rec = new Guacamole.SessionRecording(recordingTunnel(blob));
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

  const paint = () => {
    hook.position = rec.getPosition();
    hook.duration = rec.getDuration();
    hook.playing = playing;
    seek.max = String(hook.duration);
    if (!seeking) seek.value = String(hook.position);
    time.textContent = `${formatDuration(hook.position)} / ${formatDuration(hook.duration)}`;
    replace(playBtn, icon(playing ? 'pause' : 'play'));
    playBtn.setAttribute('aria-label', playing ? 'Pause' : 'Play');
  };

  const stopTimer = () => { window.clearInterval(timer); timer = 0; };
  const tick = () => {
    if (seeking) return;
    const target = Math.min(rec.getDuration(), rec.getPosition() + 100 * hook.speed);
    seeking = true;
    rec.seek(target, () => {
      seeking = false;
      if (target >= rec.getDuration()) { playing = false; stopTimer(); }
      paint();
    });
  };
  const play = () => {
    if (rec.getPosition() >= rec.getDuration()) rec.seek(0);
    playing = true;
    if (hook.speed === 1) rec.play();
    else { rec.pause(); stopTimer(); timer = window.setInterval(tick, 100); }
    paint();
  };
  const pause = () => { playing = false; stopTimer(); rec.pause(); paint(); };

  playBtn.addEventListener('click', () => (playing ? pause() : play()));
  speed.addEventListener('change', () => {
    hook.speed = Number(speed.value) || 1;
    if (playing) { rec.pause(); stopTimer(); play(); }
  });
  seek.addEventListener('input', () => {
    const wasPlaying = playing;
    if (playing) { rec.pause(); stopTimer(); }
    seeking = true;
    rec.seek(Number(seek.value), () => {
      seeking = false;
      paint();
      if (wasPlaying) play();
    });
  });
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
    if (window.__guacrPlayer === hook) delete window.__guacrPlayer;
  });
}
