import Guacamole from 'guacamole-common-js';
import { api, getCsrf } from '../api';
import { copyText, field, h, icon, replace, toast } from '../dom';
import { bare, currentRender, onLeave, requireUser, Route, state } from '../main';
import { FallbackTunnel, WebRTCTunnel } from '../webrtc';

type Kind = 'connection' | 'share';
interface Target { kind: Kind; route: Route; id?: string }

// Guacamole status codes that mean "do not retry automatically".
const FINAL_CODES = new Set([0x0203, 0x0205, 0x0209, 0x0301, 0x0303, 0x0308, 0x0204, 0x0300, 0x030D]);
const STATUS_TEXT: Record<number, string> = {
  0x0100: 'unsupported', 0x0200: 'server error', 0x0201: 'server busy', 0x0202: 'upstream timeout',
  0x0203: 'upstream error', 0x0204: 'resource not found', 0x0205: 'resource conflict', 0x0206: 'resource closed',
  0x0207: 'upstream not found', 0x0208: 'upstream unavailable', 0x0209: 'session conflict', 0x020A: 'session timeout',
  0x020B: 'session closed', 0x0300: 'bad request', 0x0301: 'unauthorized', 0x0303: 'forbidden',
  0x0308: 'timeout', 0x030D: 'overrun', 0x030F: 'bad type', 0x031D: 'too many',
};
// Protocols whose screen can come as H.264 video over WebRTC.
const GRAPHICAL = new Set(['vnc', 'rdp']);
const VIDEO_PREF = 'guacr.video';
function videoPreference(): boolean {
  try { return localStorage.getItem(VIDEO_PREF) !== '0'; } catch { return true; }
}
function setVideoPreference(on: boolean): void {
  try { localStorage.setItem(VIDEO_PREF, on ? '1' : '0'); } catch { /* private mode */ }
}
const STATE_TEXT = ['Idle', 'Connecting…', 'Waiting for the server…', 'Connected', 'Disconnecting…', 'Disconnected'];

// Special keys: [label, keysyms pressed in order then released in reverse]
const SPECIAL_KEYS: [string, number[]][] = [
  ['Ctrl-Alt-Del', [0xFFE3, 0xFFE9, 0xFFFF]],
  ['Esc', [0xFF1B]],
  ['Tab', [0xFF09]],
  ['Ctrl-C', [0xFFE3, 0x0063]],
  ['Ctrl-D', [0xFFE3, 0x0064]],
  ['Ctrl-Z', [0xFFE3, 0x007A]],
  ['Alt-Tab', [0xFFE9, 0xFF09]],
  ['Alt-F4', [0xFFE9, 0xFFC1]],
  ['Windows', [0xFFEB]],
  ['Print Screen', [0xFF61]],
];

// One keyboard for the whole page; the active client view plugs into it.
let keyboard: Guacamole.Keyboard | null = null;
let keySink: { down(k: number): boolean; up(k: number): void } | null = null;
function ensureKeyboard(): Guacamole.Keyboard {
  if (!keyboard) {
    keyboard = new Guacamole.Keyboard(document);
    keyboard.onkeydown = (k) => (keySink ? keySink.down(k) : true);
    keyboard.onkeyup = (k) => { if (keySink) keySink.up(k); };
  }
  return keyboard;
}

/** Test and debugging hook: read-only view of the live client. */
interface Hook {
  state: number; error: { code: number; message: string } | null; transport: string;
  uuid: string | null; clipboard: string; client: Guacamole.Client | null; display: Guacamole.Display | null;
  /** WebRTC: the peer connection, the <video> showing the screen (video mode), why WebRTC was skipped. */
  pc: RTCPeerConnection | null; video: HTMLVideoElement | null; fallbackReason: string | null; setupMs: number;
}
declare global { interface Window { __guacr?: Hook } }

function describeStatus(code: number): string {
  return STATUS_TEXT[code] ?? `status ${code}`;
}

export async function renderClient(target: Target): Promise<void> {
  const seq = currentRender();
  const q = target.route.query;
  const token = q.get('token');
  const join = q.get('join');
  let connect: URLSearchParams;
  let title = 'Connection';
  let backHref = '#/';
  let protocol: string | null = null; // unknown for share links, tokens and joins
  if (target.kind === 'share') {
    if (!target.id) throw new Error('This share link is incomplete.');
    connect = new URLSearchParams({ share: target.id });
    title = 'Shared session';
    backHref = '';
  } else if (token) {
    connect = new URLSearchParams({ token });
    title = 'Connection';
    backHref = '';
  } else if (join) {
    if (!(await requireUser(true))) return;
    connect = new URLSearchParams({ join });
    if (q.get('read_only') === '1') connect.set('read_only', '1');
    title = 'Joined session';
    backHref = '#/admin/sessions';
  } else {
    if (!target.id) throw new Error('No connection was chosen.');
    if (!(await requireUser())) return;
    connect = new URLSearchParams({ connection: target.id });
    try {
      const list = await api.connections();
      const c = list.find((x) => x.id === target.id);
      if (c) { title = c.name; protocol = c.protocol; }
    } catch { /* the tunnel will report the real problem */ }
  }
  if (seq !== currentRender()) return; // the user went elsewhere meanwhile
  const loggedIn = !!state.user;
  // ?transport=webrtc|websocket|http forces one transport (no fallback).
  const forced = q.get('transport');
  // ?video=0 (or the menu's option, remembered) keeps WebRTC sessions on the img path.
  const videoParam = q.get('video');
  let videoWanted = videoParam !== null ? !/^(0|false|no|off)$/i.test(videoParam) : videoPreference();

  const main = bare(title);
  main.classList.add('client-page');
  const host = h('div', { class: 'display-host', tabindex: '0', 'aria-label': `Remote display: ${title}`, id: 'display-host' });
  const overlayMsg = h('p', { class: 'overlay-msg', id: 'status-message' });
  const overlayTitle = h('h2', { class: 'overlay-title', id: 'status-title' });
  const overlayActions = h('div', { class: 'actions' });
  const spinner = h('div', { class: 'spinner', 'aria-hidden': 'true' });
  const overlay = h('div', { class: 'status-overlay', role: 'alertdialog', 'aria-live': 'assertive', 'aria-labelledby': 'status-title', 'aria-describedby': 'status-message' },
    h('div', { class: 'card overlay-card' }, spinner, overlayTitle, overlayMsg, overlayActions));
  const menuBtn = h('button', { type: 'button', class: 'menu-toggle btn', 'aria-expanded': 'false', 'aria-controls': 'client-menu', title: 'Menu (Ctrl+Alt+Shift)' }, icon('menu'), h('span', { class: 'sr-only' }, 'Open menu'));
  const menu = h('aside', { class: 'client-menu', id: 'client-menu', 'aria-label': 'Session menu', hidden: true });
  // Touch devices: a hidden text field raises the on-screen keyboard; what is typed is sent as keys.
  const textInput = h('textarea', { class: 'text-input', id: 'text-input', 'aria-label': 'Type into the session', autocapitalize: 'off', autocomplete: 'off', spellcheck: 'false', rows: '1' });
  main.append(host, overlay, menuBtn, menu, textInput);

  const hook: Hook = { state: 0, error: null, transport: '', uuid: null, clipboard: '', client: null, display: null, pc: null, video: null, fallbackReason: null, setupMs: 0 };
  window.__guacr = hook;

  let client: Guacamole.Client | null = null;
  let tunnel: Guacamole.Tunnel | null = null;
  let wsTunnel: Guacamole.Tunnel | null = null;
  let httpTunnel: Guacamole.Tunnel | null = null;
  let rtcTunnel: WebRTCTunnel | null = null;
  let videoEl: HTMLVideoElement | null = null;
  let fit = true;
  let retryTimer = 0;
  let resizeTimer = 0;
  let left = false;
  let lastError: { code: number; message: string } | null = null;

  // --- status overlay
  const showOverlay = (kind: 'busy' | 'error' | 'closed', t: string, msg: string, actions: HTMLElement[] = []) => {
    overlay.hidden = false;
    overlay.dataset.kind = kind;
    spinner.hidden = kind !== 'busy';
    overlayTitle.textContent = t;
    overlayMsg.textContent = msg;
    replace(overlayActions, actions);
    const first = actions[0];
    if (first) setTimeout(() => first.focus(), 0);
  };
  const hideOverlay = () => { overlay.hidden = true; };
  const reconnectBtn = () => h('button', { type: 'button', class: 'btn btn-primary', id: 'reconnect', onclick: () => start() }, icon('refresh'), 'Reconnect');
  const leaveBtn = () => backHref ? h('a', { class: 'btn', href: backHref }, 'Back') : null;

  // --- scaling
  const rescale = () => {
    if (!client) return;
    const d = client.getDisplay();
    const dw = d.getWidth();
    const dh = d.getHeight();
    if (!dw || !dh) return;
    const s = fit ? Math.min(host.clientWidth / dw, host.clientHeight / dh) : 1 / (window.devicePixelRatio || 1);
    d.scale(Number.isFinite(s) && s > 0 ? s : 1);
    host.classList.toggle('scroll', !fit);
  };
  const optimalSize = () => {
    const dpr = window.devicePixelRatio || 1;
    return { w: Math.max(1, Math.floor(host.clientWidth * dpr)), h: Math.max(1, Math.floor(host.clientHeight * dpr)), dpi: Math.round(96 * dpr) };
  };
  const onWindowResize = () => {
    rescale();
    window.clearTimeout(resizeTimer);
    resizeTimer = window.setTimeout(() => {
      if (client && hook.state === 3) { const s = optimalSize(); client.sendSize(s.w, s.h); }
    }, 250);
  };
  window.addEventListener('resize', onWindowResize);

  // --- keyboard
  const kb = ensureKeyboard();
  const typingInMenu = () => {
    const a = document.activeElement;
    if (a === textInput) return true;
    return !!a && menu.contains(a) && (a instanceof HTMLInputElement || a instanceof HTMLTextAreaElement || a instanceof HTMLSelectElement);
  };
  const typeChar = (ch: string) => {
    const cp = ch.codePointAt(0) ?? 0;
    const keysym = ch === '\n' ? 0xFF0D : cp < 0x100 ? cp : 0x01000000 | cp;
    client?.sendKeyEvent(1, keysym);
    client?.sendKeyEvent(0, keysym);
  };
  textInput.addEventListener('input', () => {
    for (const ch of textInput.value) typeChar(ch);
    textInput.value = '';
  });
  textInput.addEventListener('keydown', (e) => {
    const special: Record<string, number> = { Backspace: 0xFF08, Enter: 0xFF0D, Tab: 0xFF09, Escape: 0xFF1B, ArrowLeft: 0xFF51, ArrowUp: 0xFF52, ArrowRight: 0xFF53, ArrowDown: 0xFF54 };
    const k = special[e.key];
    if (k !== undefined && !textInput.value) {
      e.preventDefault();
      client?.sendKeyEvent(1, k);
      client?.sendKeyEvent(0, k);
    }
  });
  keySink = {
    down: (k) => {
      if (typingInMenu() || !client) return true;
      client.sendKeyEvent(1, k);
      return false;
    },
    up: (k) => { if (client && !typingInMenu()) client.sendKeyEvent(0, k); },
  };
  // Ctrl+Alt+Shift toggles the menu, as in Guacamole's own client.
  const onKeyDownCapture = (e: KeyboardEvent) => {
    if (e.ctrlKey && e.altKey && e.shiftKey && (e.key === 'Shift' || e.key === 'Control' || e.key === 'Alt')) toggleMenu();
    if (e.key === 'Escape' && !menu.hidden && typingInMenu()) { toggleMenu(false); e.stopPropagation(); }
  };
  window.addEventListener('keydown', onKeyDownCapture, true);

  // --- clipboard
  const clipArea = h('textarea', { id: 'clipboard-text', rows: '5', spellcheck: 'false', placeholder: 'Text copied in the session appears here. Type or paste here to send it.' });
  const sendClipboard = (text: string) => {
    if (!client) return;
    const stream = client.createClipboardStream('text/plain');
    const w = new Guacamole.StringWriter(stream);
    w.sendText(text);
    w.sendEnd();
  };

  // --- menu
  const info = h('dl', { class: 'kv kv-compact', id: 'connection-info' });
  const paintInfo = () => {
    replace(info,
      h('dt', null, 'Connection'), h('dd', null, title),
      h('dt', null, 'State'), h('dd', { id: 'info-state' }, STATE_TEXT[hook.state] ?? String(hook.state)),
      h('dt', null, 'Transport'), h('dd', { id: 'info-transport' }, hook.transport || '—'),
      hook.fallbackReason ? [h('dt', null, 'WebRTC'), h('dd', { id: 'info-fallback' }, `not used: ${hook.fallbackReason}`)] : null,
      h('dt', null, 'Session'), h('dd', { class: 'mono' }, hook.uuid || '—'),
      client ? [h('dt', null, 'Display'), h('dd', null, `${client.getDisplay().getWidth()}×${client.getDisplay().getHeight()}`)] : null);
  };
  const shareOut = h('div', { class: 'share-out', 'aria-live': 'polite' });
  const makeShare = async (readOnly: boolean) => {
    if (!hook.uuid) { toast('The session is not connected yet.', 'error'); return; }
    try {
      const link = await api.share(hook.uuid, readOnly);
      const url = new URL(link.url || `/#/share/${encodeURIComponent(link.token)}`, location.origin).toString();
      const input = h('input', { type: 'text', readonly: true, value: url, class: 'mono', id: readOnly ? 'share-url-ro' : 'share-url-rw', 'aria-label': readOnly ? 'Read-only share link' : 'Full-control share link' });
      const copy = h('button', { type: 'button', class: 'btn', onclick: async () => { toast((await copyText(url)) ? 'Link copied.' : 'Copy failed: select the link and copy it.'); } }, icon('copy'), 'Copy');
      replace(shareOut, h('div', { class: 'field' }, h('label', { for: input.id }, readOnly ? 'Read-only link' : 'Full-control link'),
        h('div', { class: 'input-row' }, input, copy)),
        link.expires ? h('small', { class: 'hint' }, 'Expires ', new Date(link.expires).toLocaleString()) : null);
      input.select();
    } catch (e) {
      replace(shareOut, h('div', { class: 'alert', role: 'alert' }, (e as Error).message));
    }
  };
  const videoBox = h('input', { type: 'checkbox', checked: videoWanted, id: 'video-enabled' });
  videoBox.addEventListener('change', () => {
    videoWanted = videoBox.checked;
    setVideoPreference(videoWanted);
    // Takes effect on a new connection: reconnect if this one uses WebRTC.
    if (rtcTunnel && hook.transport.startsWith('WebRTC') && hook.state === 3) {
      toast(videoWanted ? 'Reconnecting with video…' : 'Reconnecting without video…');
      toggleMenu(false);
      start();
    }
  });
  const scaleBox = h('input', { type: 'checkbox', checked: true, id: 'scale-fit' });
  scaleBox.addEventListener('change', () => { fit = scaleBox.checked; rescale(); });
  const fullscreen = () => {
    if (document.fullscreenElement) void document.exitFullscreen();
    else void main.requestFullscreen?.().catch(() => toast('Fullscreen is not available here.', 'error'));
  };
  const sendKeys = (keys: number[]) => {
    if (!client) return;
    for (const k of keys) client.sendKeyEvent(1, k);
    for (const k of [...keys].reverse()) client.sendKeyEvent(0, k);
  };
  const disconnect = () => {
    left = true;
    window.clearTimeout(retryTimer);
    client?.disconnect();
    showOverlay('closed', 'Disconnected', 'You closed this connection.', [reconnectBtn(), leaveBtn()].filter(Boolean) as HTMLElement[]);
    toggleMenu(false);
  };
  clipArea.addEventListener('input', () => { hook.clipboard = clipArea.value; });
  const clipSend = h('button', { type: 'button', class: 'btn', id: 'clipboard-send', onclick: () => sendClipboard(clipArea.value) }, 'Paste into session');
  replace(menu,
    h('div', { class: 'menu-head' }, h('h2', null, title),
      h('button', { type: 'button', class: 'btn btn-ghost', 'aria-label': 'Close menu', onclick: () => toggleMenu(false) }, icon('close'))),
    h('section', { 'aria-labelledby': 'm-keys' }, h('h3', { id: 'm-keys' }, 'Special keys'),
      h('div', { class: 'key-grid' }, SPECIAL_KEYS.map(([label, keys]) =>
        h('button', { type: 'button', class: 'btn btn-small', onclick: () => sendKeys(keys) }, label)))),
    h('section', { 'aria-labelledby': 'm-clip' }, h('h3', { id: 'm-clip' }, 'Clipboard'),
      field('Shared clipboard', clipArea), h('div', { class: 'actions' }, clipSend)),
    h('section', { 'aria-labelledby': 'm-display' }, h('h3', { id: 'm-display' }, 'Display'),
      field('Scale to fit the window', scaleBox),
      protocol === null || GRAPHICAL.has(protocol) ? field('Screen as H.264 video (WebRTC)', videoBox) : null,
      h('div', { class: 'actions' },
        h('button', { type: 'button', class: 'btn', onclick: fullscreen }, icon('fullscreen'), 'Fullscreen'),
        h('button', { type: 'button', class: 'btn', id: 'show-keyboard', onclick: () => { toggleMenu(false); textInput.focus(); } }, 'On-screen keyboard'))),
    target.kind === 'connection' && loggedIn && !token ? h('section', { 'aria-labelledby': 'm-share' }, h('h3', { id: 'm-share' }, 'Share this session'),
      h('div', { class: 'actions' },
        h('button', { type: 'button', class: 'btn', id: 'share-ro', onclick: () => void makeShare(true) }, icon('link'), 'Read-only link'),
        h('button', { type: 'button', class: 'btn', id: 'share-rw', onclick: () => void makeShare(false) }, icon('link'), 'Full-control link')),
      shareOut) : null,
    h('section', { 'aria-labelledby': 'm-info' }, h('h3', { id: 'm-info' }, 'Connection'), info,
      h('div', { class: 'actions' },
        h('button', { type: 'button', class: 'btn btn-danger', id: 'disconnect', onclick: disconnect }, 'Disconnect'),
        backHref ? h('a', { class: 'btn', href: backHref }, 'Leave') : null)));
  function toggleMenu(open?: boolean): void {
    const show = open ?? menu.hidden;
    menu.hidden = !show;
    menuBtn.setAttribute('aria-expanded', String(show));
    kb.reset();
    if (show) { paintInfo(); (menu.querySelector('button') as HTMLElement | null)?.focus(); }
    else host.focus();
  }
  menuBtn.addEventListener('click', () => toggleMenu());

  // --- connecting
  function teardown(): void {
    window.clearTimeout(retryTimer);
    if (client) {
      client.onstatechange = null;
      client.onerror = null;
      client.onclipboard = null;
      try { client.disconnect(); } catch { /* already closed */ }
    }
    client = null;
    hook.client = null;
    hook.display = null;
    if (videoEl) { videoEl.srcObject = null; videoEl = null; }
    hook.video = null;
    hook.pc = null;
    rtcTunnel = null;
    replace(host);
  }

  let endedFor: Guacamole.Client | null = null;
  function ended(c: Guacamole.Client): void {
    if (client !== c || endedFor === c) return;
    endedFor = c;
    hook.state = 5;
    if (left) return;
    const err = hook.error ?? lastError;
    const actions = () => [reconnectBtn(), leaveBtn()].filter(Boolean) as HTMLElement[];
    if (!err) {
      showOverlay('closed', 'Disconnected', 'The session has ended.', actions());
      return;
    }
    const closed = err.code === 0x020B || err.code === 0x0206;
    const final = closed || FINAL_CODES.has(err.code);
    const msg = err.message || 'The connection failed.';
    const detail = `${msg} (${describeStatus(err.code)}, ${err.code})`;
    if (final) {
      showOverlay('error', closed ? 'Session closed' : 'Connection refused', detail, actions());
      return;
    }
    let n = 10;
    const acts = actions();
    const tick = () => {
      if (client !== c || left) return;
      showOverlay('error', 'Connection lost', `${detail} Reconnecting in ${n} s…`, acts);
      if (n-- <= 0) start(); else retryTimer = window.setTimeout(tick, 1000);
    };
    tick();
  }

  function start(): void {
    teardown();
    left = false;
    lastError = null;
    hook.error = null;
    showOverlay('busy', 'Connecting…', title);
    const headers: Record<string, string> = {};
    const csrf = getCsrf();
    if (csrf) headers['X-CSRF-Token'] = csrf;
    wsTunnel = new Guacamole.WebSocketTunnel('/tunnel/websocket');
    httpTunnel = new Guacamole.HTTPTunnel('/tunnel/http', false, headers);
    const rtc = forced === 'http' || forced === 'websocket' ? null : new WebRTCTunnel('/tunnel/webrtc', {
      headers: (): Record<string, string> => { const t = getCsrf(); return t ? { 'X-CSRF-Token': t } : {}; },
      wantVideo: videoWanted && (protocol === null || GRAPHICAL.has(protocol)),
    });
    rtcTunnel = rtc;
    hook.fallbackReason = null;
    tunnel = forced === 'http' ? httpTunnel : forced === 'websocket' ? wsTunnel
      : forced === 'webrtc' && rtc ? rtc
        : new FallbackTunnel(rtc as WebRTCTunnel, new Guacamole.ChainedTunnel(wsTunnel, httpTunnel));
    const c = new Guacamole.Client(tunnel);
    client = c;
    hook.client = c;
    const display = c.getDisplay();
    hook.display = display;
    const el = display.getElement();
    el.classList.add('display');
    host.appendChild(el);
    if (rtc) {
      // Video mode: the screen plays in a <video> under the display, whose layer 0 stays
      // transparent (the server sends no img/copy/rect to it), so the cursor and other
      // layers show on top; input still goes through the display element.
      const video = h('video', { class: 'display-video', autoplay: true, playsinline: true, muted: true, 'aria-hidden': 'true', hidden: true });
      video.muted = true;
      el.insertBefore(video, el.firstChild);
      videoEl = video;
      rtc.ontrack = (track) => {
        if (track.kind !== 'video' || rtcTunnel !== rtc) return;
        video.srcObject = new MediaStream([track]);
        video.hidden = false;
        hook.video = video;
        void video.play().catch(() => { /* autoplay of a muted video is allowed; retried on the next frame */ });
      };
    }
    display.onresize = () => rescale();

    const mouse = new Guacamole.Mouse(el);
    mouse.onEach(['mousedown', 'mouseup', 'mousemove'], (e) => { host.focus(); c.sendMouseState(e.state, true); });
    const touch = new Guacamole.Mouse.Touchscreen(el);
    touch.onEach(['mousedown', 'mouseup', 'mousemove'], (e) => c.sendMouseState(e.state, true));

    tunnel.onuuid = (uuid) => { hook.uuid = uuid; };
    tunnel.onerror = (status) => {
      lastError = { code: status.code, message: status.message || '' };
    };
    // Tunnel states: 0 connecting, 1 open, 2 closed, 3 unstable.
    tunnel.onstatechange = (ts) => {
      host.classList.toggle('unstable', ts === 3);
      if (ts === 2) ended(c);
    };

    c.onstatechange = (s) => {
      if (client !== c) return;
      hook.state = s;
      if (s === 3) {
        const active = tunnel instanceof FallbackTunnel ? tunnel.current : tunnel;
        hook.fallbackReason = tunnel instanceof FallbackTunnel ? tunnel.fallbackReason : null;
        if (rtc && active === rtc) {
          hook.transport = rtc.video ? 'WebRTC (H.264 video)' : 'WebRTC (data channel)';
          hook.pc = rtc.pc;
          hook.setupMs = Math.round(rtc.setupMs);
          if (!rtc.video && videoEl) videoEl.hidden = true;
        } else {
          hook.transport = wsTunnel?.state === 1 || wsTunnel?.state === 3 ? 'WebSocket'
            : httpTunnel?.state === 1 || httpTunnel?.state === 3 ? 'HTTP' : 'unknown';
        }
        hook.uuid = tunnel?.uuid || wsTunnel?.uuid || httpTunnel?.uuid || hook.uuid;
        hideOverlay();
        rescale();
        host.focus();
      } else if (s === 1 || s === 2) {
        showOverlay('busy', s === 1 ? 'Connecting…' : 'Waiting for the server…', title);
      } else if (s === 5) {
        ended(c);
      }
      if (!menu.hidden) paintInfo();
    };
    c.onerror = (status) => {
      hook.error = { code: status.code, message: status.message || '' };
    };
    c.onclipboard = (stream, mimetype) => {
      if (!/^text\//.test(mimetype)) return;
      const reader = new Guacamole.StringReader(stream);
      let text = '';
      reader.ontext = (t) => { text += t; };
      reader.onend = () => {
        clipArea.value = text;
        hook.clipboard = text;
        // Also to the local clipboard where the browser allows it (secure context, focused page).
        if (navigator.clipboard && window.isSecureContext && document.hasFocus()) {
          navigator.clipboard.writeText(text).catch(() => { /* the panel still has it */ });
        }
      };
    };

    const s = optimalSize();
    connect.set('width', String(s.w));
    connect.set('height', String(s.h));
    connect.set('dpi', String(s.dpi));
    try { connect.set('timezone', Intl.DateTimeFormat().resolvedOptions().timeZone); } catch { /* optional */ }
    connect.delete('audio'); connect.delete('image'); connect.delete('video');
    for (const a of Guacamole.AudioPlayer.getSupportedTypes()) connect.append('audio', a);
    for (const m of ['image/png', 'image/jpeg', 'image/webp']) connect.append('image', m);
    c.connect(connect.toString());
  }

  onLeave(() => {
    left = true;
    keySink = null;
    kb.reset();
    teardown();
    window.removeEventListener('resize', onWindowResize);
    window.removeEventListener('keydown', onKeyDownCapture, true);
    if (window.__guacr === hook) delete window.__guacr;
  });
  start();
}
