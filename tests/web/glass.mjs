#!/usr/bin/env node
// Glass-to-glass delay of a graphical session in the web client: a clock painted on the VNC
// desktop (scripts/peers.d/glass.sh: Xvnc :15 1920x1080 + tests/web/glass-clock.c, the wall
// clock in ms as 32 black/white blocks every 4 ms) is read back in the browser from what it
// shows, and compared with the browser's Date.now() (same machine, same clock).
//
//   video        WebRTC, H.264 video track: every decoded frame (requestVideoFrameCallback)
//                is drawn to a canvas and its blocks decoded; "glass" = the frame's
//                expectedDisplayTime; the frame's receiveTime splits the delay into
//                "to the browser" (capture, encode, network) and "in the browser" (decode,
//                render).
//   datachannel  WebRTC data channel, img instructions (?video=0): the display's layer 0 is
//                read at every animation frame; "glass" = the animation frame's time.
//   websocket    the same over the WebSocket tunnel (?transport=websocket).
//
// Usage (guacr built, web/dist built, peers started — scripts/test-peers.sh start):
//   node tests/web/glass.mjs [--mode video|datachannel|websocket|all] [--frames 300]
//        [--viewport 1920x1080 (the browser window)] [--json FILE]
// The desktop's size is the glass peer's (GUACR_GLASS_GEOMETRY when it starts, 1920x1080).
// The clock's paint-to-capture step adds 0–4 ms (2 ms on average) to every figure.
import fs from 'node:fs';
import { parseArgs } from 'node:util';
import { ApiClient, Guacr, launchBrowser, loginUi, newPage, peers, waitConnected } from './harness.mjs';

const { values: opts } = parseArgs({
  options: {
    mode: { type: 'string', default: 'all' },
    frames: { type: 'string', default: '300' },
    json: { type: 'string' },
    viewport: { type: 'string', default: '1920x1080' },
    timeout: { type: 'string', default: '120' },
  },
});
const FRAMES = Number(opts.frames);
const MODES = opts.mode === 'all' ? ['video', 'datachannel', 'websocket'] : opts.mode.split(',');
for (const m of MODES) if (!['video', 'datachannel', 'websocket'].includes(m)) throw new Error(`unknown mode ${m}`);
const [vw, vh] = opts.viewport.split('x').map(Number);

const env = peers();
const GLASS_HOST = process.env.GUACR_TEST_GLASS_HOST || readEnvD('GUACR_TEST_GLASS_HOST');
const GLASS_PORT = process.env.GUACR_TEST_GLASS_PORT || readEnvD('GUACR_TEST_GLASS_PORT');
if (!GLASS_HOST || !GLASS_PORT) {
  throw new Error('the glass peer is not running: GUACR_TEST_GLASS_* missing (scripts/test-peers.sh install && scripts/test-peers.sh start, which runs scripts/peers.d/glass.sh)');
}
function readEnvD(k) {
  try {
    const t = fs.readFileSync(`${process.env.GUACR_PEERS_DIR || '/var/tmp/guacr-peers'}/env.d/glass`, 'utf8');
    return new RegExp(`^export ${k}=(.*)$`, 'm').exec(t)?.[1];
  } catch { return undefined; }
}
void env;

// Runs in the page: collects `frames` distinct clock readings and returns the delays.
async function collect({ mode, frames, timeoutMs }) {
  const W = 512; const H = 16; const BLOCK = 16;
  const canvas = document.createElement('canvas');
  canvas.width = W; canvas.height = H;
  const ctx = canvas.getContext('2d', { willReadFrequently: true });
  const check8 = (v) => (((v & 0xff) + 3 * ((v >> 8) & 0xff) + 7 * ((v >> 16) & 0xff)) ^ 0xa5) & 0xff;
  const decode = () => {
    const d = ctx.getImageData(0, 0, W, H).data;
    let word = 0;
    for (let i = 0; i < 32; i++) {
      const x = i * BLOCK + BLOCK / 2; const y = BLOCK / 2;
      const k = (y * W + x) * 4;
      const lum = (d[k] + d[k + 1] + d[k + 2]) / 3;
      if (lum > 64 && lum < 192) return null; // smeared: not a clean frame
      word = (word * 2) + (lum < 128 ? 1 : 0);
    }
    const v = Math.floor(word / 256); const c = word % 256;
    return check8(v) === c ? v : null;
  };
  const age = (atMs, v) => {
    const now24 = Math.floor(atMs) % 0x1000000;
    return (now24 - v + 0x1000000) % 0x1000000; // ms, wraps every 4.6 h
  };
  const out = { glass: [], toBrowser: [], inBrowser: [], rejected: 0, repeats: 0 };
  let last = -1;
  const done = () => out.glass.length >= frames;
  const g = window.__guacr;
  await new Promise((resolve) => {
    const stop = setTimeout(resolve, timeoutMs);
    const finish = () => { clearTimeout(stop); resolve(); };
    if (mode === 'video') {
      const v = g.video;
      const onFrame = (_now, meta) => {
        ctx.drawImage(v, 0, 0, W, H, 0, 0, W, H);
        const val = decode();
        if (val === null) out.rejected++;
        else if (val === last) out.repeats++;
        else {
          last = val;
          const shown = performance.timeOrigin + meta.expectedDisplayTime;
          out.glass.push(age(shown, val));
          if (meta.receiveTime) {
            const recv = performance.timeOrigin + meta.receiveTime;
            out.toBrowser.push(age(recv, val));
            out.inBrowser.push(shown - recv);
          }
        }
        if (done()) finish(); else v.requestVideoFrameCallback(onFrame);
      };
      v.requestVideoFrameCallback(onFrame);
    } else {
      const layer = g.display.getDefaultLayer().getCanvas();
      const onRaf = (ts) => {
        ctx.clearRect(0, 0, W, H);
        ctx.drawImage(layer, 0, 0, W, H, 0, 0, W, H);
        const val = decode();
        if (val === null) out.rejected++;
        else if (val !== last) {
          last = val;
          out.glass.push(age(performance.timeOrigin + ts, val));
        }
        if (done()) finish(); else requestAnimationFrame(onRaf);
      };
      requestAnimationFrame(onRaf);
    }
  });
  return out;
}

function summary(xs) {
  if (!xs.length) return null;
  const s = [...xs].sort((a, b) => a - b);
  const q = (p) => s[Math.min(s.length - 1, Math.floor(p * s.length))];
  return { n: s.length, median: q(0.5), p95: q(0.95), min: s[0], max: s[s.length - 1] };
}
const fmt = (x) => (x ? `median ${x.median.toFixed(1)} ms, p95 ${x.p95.toFixed(1)} ms (min ${x.min.toFixed(1)}, max ${x.max.toFixed(1)}, n ${x.n})` : 'n/a');

const g = await Guacr.start();
let browser;
const results = {};
try {
  const api = new ApiClient(g.base);
  await api.login(g.admin.username, g.admin.password);
  const conn = await api.call('POST', '/api/admin/connections', {
    name: 'glass', protocol: 'vnc', group: '', description: 'glass-clock desktop',
    params: { hostname: GLASS_HOST, port: String(GLASS_PORT) },
  }, { expect: 201 });
  browser = await launchBrowser();
  for (const mode of MODES) {
    const p = await newPage(browser, `glass-${mode}`, { viewport: { width: vw, height: vh } });
    await loginUi(p, g.base, g.admin.username, g.admin.password);
    await p.getByRole('heading', { name: 'Your connections' }).waitFor();
    const q = mode === 'video' ? '' : mode === 'datachannel' ? '?transport=webrtc&video=0' : '?transport=websocket';
    await p.goto(`${g.base}/#/client/${encodeURIComponent(conn.id)}${q}`);
    await waitConnected(p, 30000);
    const transport = await p.evaluate(() => window.__guacr.transport);
    const want = { video: 'WebRTC (H.264 video)', datachannel: 'WebRTC (data channel)', websocket: 'WebSocket' }[mode];
    if (transport !== want) throw new Error(`${mode}: the client uses ${transport}, not ${want}`);
    if (mode === 'video') await p.waitForFunction(() => window.__guacr.video && window.__guacr.video.videoWidth > 0, null, { timeout: 15000 });
    const desktop = await p.evaluate(() => `${window.__guacr.display.getWidth()}x${window.__guacr.display.getHeight()}`);
    await p.waitForTimeout(1500); // past the first full-screen frame
    const raw = await p.evaluate(collect, { mode, frames: FRAMES, timeoutMs: Number(opts.timeout) * 1000 });
    const setupMs = await p.evaluate(() => window.__guacr.setupMs);
    const r = { transport, desktop, setupMs, glass: summary(raw.glass), toBrowser: summary(raw.toBrowser), inBrowser: summary(raw.inBrowser), rejected: raw.rejected };
    if (mode === 'video') {
      r.stats = await p.evaluate(async () => {
        const s = await window.__guacr.pc.getStats();
        let o = {};
        s.forEach((x) => { if (x.type === 'inbound-rtp' && x.kind === 'video') o = { framesDecoded: x.framesDecoded, framesDropped: x.framesDropped, framesPerSecond: x.framesPerSecond, bytesReceived: x.bytesReceived, jitterBufferDelay: x.jitterBufferDelay, jitterBufferEmittedCount: x.jitterBufferEmittedCount, totalDecodeTime: x.totalDecodeTime }; });
        return o;
      });
      if (r.stats.jitterBufferEmittedCount) r.stats.jitterBufferMsPerFrame = 1000 * r.stats.jitterBufferDelay / r.stats.jitterBufferEmittedCount;
      if (r.stats.framesDecoded) r.stats.decodeMsPerFrame = 1000 * r.stats.totalDecodeTime / r.stats.framesDecoded;
    }
    results[mode] = r;
    console.log(`glass ${mode.padEnd(11)} (${transport}, ${desktop}): glass-to-glass ${fmt(r.glass)}`);
    if (r.toBrowser) console.log(`glass ${mode.padEnd(11)}   clock → frame received: ${fmt(r.toBrowser)}; received → shown: ${fmt(r.inBrowser)}`);
    if (mode !== 'websocket') console.log(`glass ${mode.padEnd(11)}   connect() → first instruction on the data channel: ${setupMs} ms`);
    if (r.stats) console.log(`glass ${mode.padEnd(11)}   ${JSON.stringify(r.stats)}`);
    if (!r.glass || r.glass.n < FRAMES) console.log(`glass ${mode.padEnd(11)}   WARNING: only ${r.glass?.n ?? 0} of ${FRAMES} frames read (${raw.rejected} unreadable)`);
    await p.context().close();
  }
} finally {
  await browser?.close().catch(() => {});
  await g.stop();
}
if (opts.json) fs.writeFileSync(opts.json, `${JSON.stringify({ date: new Date().toISOString(), frames: FRAMES, viewport: opts.viewport, results }, null, 2)}\n`);
