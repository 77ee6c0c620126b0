// Guacamole tunnel over a WebRTC data channel (docs/web-api.md, "WebRTC"), and the tunnel
// that tries it first and falls back to WebSocket/HTTP by itself.
//
// Signalling: GET /tunnel/webrtc says whether the server offers WebRTC (and video);
// POST /tunnel/webrtc {connect, offer} answers {answer, tunnel, video}. The browser makes
// one data channel "guacamole" (ordered, reliable) and, for graphical sessions, a recvonly
// video transceiver; the server's messages are whole Guacamole instructions as text, the
// first one `0.,36.<tunnel uuid>;`, like the WebSocket tunnel.
import Guacamole from 'guacamole-common-js';

const CONNECTING = 0;
const OPEN = 1;
const CLOSED = 2;
const UNSTABLE = 3;

const INTERNAL = '';
const PING_EVERY_MS = 500;

// Guacamole status codes.
const SUCCESS = 0x0000;
const SERVER_ERROR = 0x0200;
const UPSTREAM_TIMEOUT = 0x0202;
const UPSTREAM_NOT_FOUND = 0x0207;
const UPSTREAM_UNAVAILABLE = 0x0208;
const CLIENT_UNAUTHORIZED = 0x0301;
const CLIENT_FORBIDDEN = 0x0303;
const CLIENT_TOO_MANY = 0x031D;

/** Refusals that another transport would get too: shown, never retried over WebSocket. */
const FINAL_REFUSALS = new Set([CLIENT_UNAUTHORIZED, CLIENT_FORBIDDEN, CLIENT_TOO_MANY]);

export interface WebRTCServerConfig {
  enabled: boolean;
  video: boolean;
  ice_servers?: RTCIceServer[];
}

/** One Guacamole instruction as text; element lengths count Unicode code points. */
export function encodeInstruction(elements: unknown[]): string {
  let out = '';
  for (let i = 0; i < elements.length; i++) {
    const s = String(elements[i]);
    out += `${i ? ',' : ''}${codePoints(s)}.${s}`;
  }
  return `${out};`;
}

function codePoints(s: string): number {
  let n = s.length;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0xD800 && c <= 0xDBFF && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xDC00 && d <= 0xDFFF) { n--; i++; }
    }
  }
  return n;
}

/**
 * Incremental parser for Guacamole instructions in text (code-point lengths). Throws on
 * malformed input; an instruction split over messages is kept until its end arrives.
 */
export class InstructionParser {
  private buf = '';
  oninstruction: ((opcode: string, args: string[]) => void) | null = null;

  receive(text: string): void {
    const s = this.buf + text;
    let i = 0;
    let start = 0; // start of the current instruction
    let elements: string[] = [];
    while (i < s.length) {
      const dot = s.indexOf('.', i);
      if (dot < 0) break; // length not complete yet
      const lenText = s.slice(i, dot);
      if (!/^\d{1,9}$/.test(lenText)) throw new Error(`bad element length "${lenText.slice(0, 16)}"`);
      let n = Number(lenText);
      // Walk n code points.
      let j = dot + 1;
      while (n > 0 && j < s.length) {
        const c = s.charCodeAt(j);
        j += c >= 0xD800 && c <= 0xDBFF && j + 1 < s.length ? 2 : 1;
        n--;
      }
      if (n > 0 || j >= s.length) break; // element or its terminator not here yet
      elements.push(s.slice(dot + 1, j));
      const term = s[j];
      i = j + 1;
      if (term === ';') {
        const [opcode, ...args] = elements;
        elements = [];
        start = i;
        this.oninstruction?.(opcode ?? '', args);
      } else if (term !== ',') {
        throw new Error(`bad element terminator "${term}"`);
      }
    }
    this.buf = s.slice(start);
    if (this.buf.length > 16 * 1024 * 1024) throw new Error('instruction too long');
  }
}

function status(code: number, message: string): Guacamole.Status {
  return new Guacamole.Status(code, message);
}

function lowLatency(receiver: RTCRtpReceiver): void {
  // Show every frame as soon as it is decoded: no jitter buffer on a remote desktop.
  try { receiver.jitterBufferTarget = 0; } catch { /* older browsers */ }
  const r = receiver as RTCRtpReceiver & { playoutDelayHint?: number };
  if ('playoutDelayHint' in r) {
    try { r.playoutDelayHint = 0; } catch { /* not settable */ }
  }
}

/** H.264 first, packetization-mode 1 and Constrained Baseline (42e01f) before the rest. */
function h264First(): RTCRtpCodec[] | null {
  const caps = typeof RTCRtpReceiver !== 'undefined' && RTCRtpReceiver.getCapabilities ? RTCRtpReceiver.getCapabilities('video') : null;
  if (!caps) return null;
  const score = (c: RTCRtpCodec) => {
    const f = c.sdpFmtpLine || '';
    return (/packetization-mode=1/.test(f) ? 2 : 0) + (/profile-level-id=42e01f/i.test(f) ? 1 : 0);
  };
  const h264 = caps.codecs.filter((c) => /^video\/h264$/i.test(c.mimeType)).sort((a, b) => score(b) - score(a));
  if (!h264.length) return null;
  // Retransmission and FEC entries keep NACK/RTX working.
  const extra = caps.codecs.filter((c) => /^video\/(rtx|red|ulpfec|flexfec-03)$/i.test(c.mimeType));
  return [...h264, ...extra];
}

export interface WebRTCTunnelOptions {
  /** Headers for the signalling POST (the CSRF token of a cookie session). */
  headers?: () => Record<string, string>;
  /** Ask for the screen as video (graphical protocols, unless the user turned it off). */
  wantVideo: boolean;
  /** How long the data channel may take to open before the tunnel gives up (ms). */
  openTimeout?: number;
}

/** A Guacamole.Tunnel over an RTCDataChannel; the session's video arrives through `ontrack`. */
export class WebRTCTunnel implements Guacamole.Tunnel {
  state = CLOSED;
  uuid: string | null = null;
  receiveTimeout = 15000;
  unstableThreshold = 1500;
  onerror: ((status: Guacamole.Status) => void) | null = null;
  onstatechange: ((state: number) => void) | null = null;
  onuuid: ((uuid: string) => void) | null = null;
  oninstruction: ((opcode: string, args: string[]) => void) | null = null;
  /** The video track of the screen (video mode only). */
  ontrack: ((track: MediaStreamTrack, receiver: RTCRtpReceiver) => void) | null = null;

  /** Why WebRTC could not be used, when another transport may still work. */
  unavailable: string | null = null;
  /** The server sends the screen as H.264 on the video track (and not as `img`). */
  video = false;
  /** The peer connection (tests read getStats from it). */
  pc: RTCPeerConnection | null = null;
  /** Time from connect() to the first instruction (ms). */
  setupMs = 0;

  private dc: RTCDataChannel | null = null;
  private gen = 0;
  private receiveTimer = 0;
  private unstableTimer = 0;
  private pingTimer = 0;
  private openTimer = 0;
  private lastPing = 0;
  private parser = new InstructionParser();

  constructor(private url: string, private opts: WebRTCTunnelOptions) {}

  isConnected(): boolean { return this.state === OPEN || this.state === UNSTABLE; }

  private setState(s: number): void {
    if (s === this.state) return;
    this.state = s;
    this.onstatechange?.(s);
  }

  connect(data?: string): void {
    const gen = ++this.gen;
    this.unavailable = null;
    this.uuid = null;
    this.video = false;
    this.parser = new InstructionParser();
    this.setState(CONNECTING);
    void this.run(data ?? '', gen).catch((e: unknown) => {
      if (gen === this.gen) this.giveUp(`WebRTC setup failed: ${e instanceof Error ? e.message : String(e)}`);
    });
  }

  private async run(data: string, gen: number): Promise<void> {
    const t0 = performance.now();
    if (typeof RTCPeerConnection !== 'function') { this.giveUp('this browser has no WebRTC'); return; }
    let cfg: WebRTCServerConfig;
    try {
      const r = await fetch(this.url, { credentials: 'same-origin', headers: { Accept: 'application/json' } });
      if (!r.ok) { this.giveUp(`the server does not offer WebRTC (HTTP ${r.status})`); return; }
      cfg = await r.json() as WebRTCServerConfig;
    } catch {
      this.giveUp('the WebRTC endpoint cannot be reached');
      return;
    }
    if (gen !== this.gen) return;
    if (!cfg || !cfg.enabled) { this.giveUp('WebRTC is turned off on the server'); return; }

    const pc = new RTCPeerConnection({ iceServers: Array.isArray(cfg.ice_servers) ? cfg.ice_servers : [] });
    this.pc = pc;
    const dc = pc.createDataChannel('guacamole', { ordered: true });
    this.dc = dc;
    let transceiver: RTCRtpTransceiver | null = null;
    if (this.opts.wantVideo && cfg.video) {
      const codecs = h264First();
      if (codecs) {
        transceiver = pc.addTransceiver('video', { direction: 'recvonly' });
        try { transceiver.setCodecPreferences(codecs); } catch { /* the server picks H.264 anyway */ }
        lowLatency(transceiver.receiver);
      }
    }
    pc.ontrack = (e) => {
      if (gen !== this.gen) return;
      lowLatency(e.receiver);
      this.ontrack?.(e.track, e.receiver);
    };
    pc.onconnectionstatechange = () => {
      if (gen !== this.gen) return;
      if (pc.connectionState === 'failed') this.lost('The WebRTC connection failed.');
    };

    await pc.setLocalDescription(await pc.createOffer());
    // No trickle ICE: wait for the host candidates (quick on a LAN), at most 2 s.
    await new Promise<void>((resolve) => {
      if (pc.iceGatheringState === 'complete') { resolve(); return; }
      const done = () => { window.clearTimeout(t); pc.removeEventListener('icegatheringstatechange', check); resolve(); };
      const check = () => { if (pc.iceGatheringState === 'complete') done(); };
      const t = window.setTimeout(done, 2000);
      pc.addEventListener('icegatheringstatechange', check);
    });
    if (gen !== this.gen) return;
    const offer = pc.localDescription?.sdp;
    if (!offer) { this.giveUp('no local description'); return; }

    let res: Response;
    try {
      res = await fetch(this.url, {
        method: 'POST',
        credentials: 'same-origin',
        headers: { 'Content-Type': 'application/json', Accept: 'application/json', ...(this.opts.headers?.() ?? {}) },
        body: JSON.stringify({ connect: data, offer }),
      });
    } catch {
      this.giveUp('the WebRTC endpoint cannot be reached');
      return;
    }
    if (gen !== this.gen) return;
    const text = await res.text();
    let body: { answer?: string; tunnel?: string; video?: boolean; error?: string; code?: string } = {};
    try { body = text ? JSON.parse(text) : {}; } catch { /* not JSON */ }
    if (gen !== this.gen) return;
    if (!res.ok) {
      const guacCode = Number.parseInt(res.headers.get('Guacamole-Status-Code') || '', 10);
      const message = res.headers.get('Guacamole-Error-Message') || body.error || `HTTP ${res.status}`;
      const authRefusal = (res.status === 401 || res.status === 403 || res.status === 429) && body.code !== 'csrf';
      if (FINAL_REFUSALS.has(guacCode) || (Number.isNaN(guacCode) && authRefusal)) {
        const code = Number.isNaN(guacCode) ? (res.status === 401 ? CLIENT_UNAUTHORIZED : res.status === 429 ? CLIENT_TOO_MANY : CLIENT_FORBIDDEN) : guacCode;
        this.close(status(code, message));
        return;
      }
      this.giveUp(`the server refused WebRTC: ${message}`);
      return;
    }
    if (typeof body.answer !== 'string') { this.giveUp('the server sent no SDP answer'); return; }
    await pc.setRemoteDescription({ type: 'answer', sdp: body.answer });
    if (gen !== this.gen) return;
    this.video = !!body.video && transceiver !== null;
    const answeredUuid = typeof body.tunnel === 'string' ? body.tunnel : null;

    this.openTimer = window.setTimeout(() => {
      if (gen === this.gen && this.state === CONNECTING) this.giveUp(`the data channel did not open within ${(this.opts.openTimeout ?? 5000) / 1000} s`);
    }, this.opts.openTimeout ?? 5000);
    const onOpen = () => { window.clearTimeout(this.openTimer); this.resetTimers(); };
    if (dc.readyState === 'open') onOpen();
    dc.onopen = onOpen;
    dc.onclose = () => { if (gen === this.gen) this.lost('The WebRTC data channel closed.'); };
    dc.onerror = () => { if (gen === this.gen) this.lost('The WebRTC data channel failed.'); };
    dc.onmessage = (e: MessageEvent) => {
      if (gen !== this.gen) return;
      this.resetTimers();
      const msg = typeof e.data === 'string' ? e.data : new TextDecoder().decode(e.data as ArrayBuffer);
      this.parser.oninstruction = (opcode, args) => {
        if (gen !== this.gen) return;
        if (this.state === CONNECTING) {
          this.setupMs = performance.now() - t0;
          if (opcode === INTERNAL && args.length === 1) this.setUUID(args[0] ?? '');
          else if (answeredUuid) this.setUUID(answeredUuid);
          this.setState(OPEN);
        }
        if (opcode !== INTERNAL) this.oninstruction?.(opcode, args);
      };
      try {
        this.parser.receive(msg);
      } catch (err) {
        this.close(status(SERVER_ERROR, `Malformed data from the server: ${(err as Error).message}`));
      }
    };
  }

  private setUUID(uuid: string): void {
    this.uuid = uuid;
    this.onuuid?.(uuid);
  }

  private resetTimers(): void {
    window.clearTimeout(this.receiveTimer);
    window.clearTimeout(this.unstableTimer);
    window.clearTimeout(this.pingTimer);
    if (this.state === UNSTABLE) this.setState(OPEN);
    const gen = this.gen;
    this.receiveTimer = window.setTimeout(() => { if (gen === this.gen) this.close(status(UPSTREAM_TIMEOUT, 'Server timeout.')); }, this.receiveTimeout);
    this.unstableTimer = window.setTimeout(() => { if (gen === this.gen && this.state === OPEN) this.setState(UNSTABLE); }, this.unstableThreshold);
    const delay = Math.max(this.lastPing + PING_EVERY_MS - Date.now(), 0);
    const ping = () => {
      if (gen !== this.gen) return;
      this.lastPing = Date.now();
      this.send(encodeInstruction([INTERNAL, 'ping', this.lastPing]));
    };
    if (delay > 0) this.pingTimer = window.setTimeout(ping, delay);
    else ping();
  }

  private send(text: string): void {
    const dc = this.dc;
    if (dc && dc.readyState === 'open') dc.send(text);
  }

  sendMessage(...elements: unknown[]): void {
    if (!this.isConnected() || elements.length === 0) return;
    this.send(encodeInstruction(elements));
  }

  disconnect(): void {
    this.close(status(SUCCESS, 'Manually closed.'));
  }

  /** Failure before the tunnel opened, where WebSocket/HTTP may still work. */
  private giveUp(reason: string): void {
    if (this.state !== CONNECTING) { this.lost(reason); return; }
    this.unavailable = reason;
    this.close(status(UPSTREAM_UNAVAILABLE, `WebRTC is not available: ${reason}`));
  }

  /** The peer or channel went away. */
  private lost(message: string): void {
    if (this.state === CONNECTING) { this.giveUp(message); return; }
    this.close(status(UPSTREAM_NOT_FOUND, message));
  }

  private close(st: Guacamole.Status): void {
    window.clearTimeout(this.receiveTimer);
    window.clearTimeout(this.unstableTimer);
    window.clearTimeout(this.pingTimer);
    window.clearTimeout(this.openTimer);
    if (this.state === CLOSED) return;
    this.gen++;
    const dc = this.dc;
    const pc = this.pc;
    this.dc = null;
    if (dc) {
      dc.onmessage = null;
      dc.onclose = null;
      dc.onopen = null;
      dc.onerror = null;
      // Let a queued `disconnect` leave before the peer connection goes.
      try { dc.close(); } catch { /* already closed */ }
    }
    if (pc) {
      pc.onconnectionstatechange = null;
      pc.ontrack = null;
      window.setTimeout(() => { try { pc.close(); } catch { /* closed */ } }, dc && st.code === SUCCESS ? 300 : 0);
    }
    if (st.code !== SUCCESS) this.onerror?.(st);
    this.setState(CLOSED);
  }
}

/**
 * Tries WebRTC first; if it is unavailable (no RTCPeerConnection, turned off, signalling
 * refused for a reason other than authorisation, channel not open in time) the next tunnel
 * (WebSocket, then HTTP) is used. Authorisation refusals end the attempt as they would on
 * any other transport.
 */
export class FallbackTunnel implements Guacamole.Tunnel {
  state = CLOSED;
  uuid: string | null = null;
  onerror: ((status: Guacamole.Status) => void) | null = null;
  onstatechange: ((state: number) => void) | null = null;
  onuuid: ((uuid: string) => void) | null = null;
  oninstruction: ((opcode: string, args: string[]) => void) | null = null;
  /** Why WebRTC was skipped, if it was. */
  fallbackReason: string | null = null;
  current: Guacamole.Tunnel | null = null;
  private data = '';
  private committed = false;

  constructor(readonly rtc: WebRTCTunnel, readonly next: Guacamole.Tunnel) {}

  isConnected(): boolean { return this.state === OPEN || this.state === UNSTABLE; }

  private setState(s: number): void {
    if (s === this.state) return;
    this.state = s;
    this.onstatechange?.(s);
  }

  connect(data?: string): void {
    this.data = data ?? '';
    this.committed = false;
    this.fallbackReason = null;
    this.attach(this.rtc);
  }

  private attach(t: Guacamole.Tunnel): void {
    this.current = t;
    const mayFallBack = () => t === this.rtc && !this.committed && this.rtc.unavailable !== null;
    t.onuuid = (u) => { if (t === this.current) { this.uuid = u; this.onuuid?.(u); } };
    t.oninstruction = (op, args) => {
      if (t !== this.current) return;
      this.committed = true;
      this.oninstruction?.(op, args);
    };
    t.onerror = (st) => {
      if (t !== this.current || mayFallBack()) return;
      this.onerror?.(st);
    };
    t.onstatechange = (s) => {
      if (t !== this.current) return;
      if (s === CLOSED && mayFallBack()) {
        this.fallbackReason = this.rtc.unavailable;
        console.info(`guacr: ${this.fallbackReason}; using WebSocket/HTTP`);
        this.attach(this.next);
        return;
      }
      if (s === OPEN) this.committed = true;
      // A tunnel that failed before opening leaves the state at CONNECTING until the
      // chain below settles; the wrapped ChainedTunnel reports only OPEN and CLOSED.
      this.setState(s);
    };
    this.setState(CONNECTING);
    t.connect(this.data);
  }

  sendMessage(...elements: unknown[]): void { this.current?.sendMessage(...elements); }

  disconnect(): void { this.current?.disconnect(); }
}
