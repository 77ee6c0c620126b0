#!/usr/bin/env node
// Check a guacd-compatible daemon with the real browser client, guacamole-common-js 1.5.0,
// running in headless Debian Chromium (driven by playwright-core), over SSH (default), VNC
// (`--protocol vnc --vnc-port N`: a VNC server showing an xterm) or RDP (`--protocol rdp
// --rdp-port N --user U --password P [--security tls]`: an RDP desktop showing an xterm).
//
//   node tests/clients/gcjs_check.mjs --host 127.0.0.1 --port 4822 --ssh-port 2222 \
//       --user guacr-pw --password guacr-test-pw [--screenshot /tmp/gcjs.png]
//
// This script plays the part of guacamole-client's web application: a minimal
// WebSocket -> TCP bridge (subprotocol "guacamole") that does the guacd handshake
// (select, args, size/audio/video/image/timezone/name, connect by position from the
// WebSocket URL's query string, ready), sends the tunnel UUID as the internal
// instruction `0.,36.<uuid>;`, answers the tunnel's `0.,4.ping,<ts>;` itself and then
// pipes whole instructions both ways. The same port serves a tiny page that loads
// guacamole-common-js as an ES module and connects with Guacamole.WebSocketTunnel.
//
// Passes when the client reaches CONNECTED (3), the default layer shows a non-trivial
// picture, typed keys (`echo gcjs-ok` + Return) change the picture, and neither the
// tunnel, the client, the page nor the bridge reported an error. Exit 0 and one summary
// line on success; exit 1 and a FAIL message otherwise.
// Setup: scripts/clients-setup.sh (npm ci here) and Debian's chromium.

import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import crypto from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { StringDecoder } from 'node:string_decoder';
import { parseArgs } from 'node:util';

const PROG = 'gcjs_check';
const GCJS_ESM = fileURLToPath(new URL(
  './node_modules/guacamole-common-js/dist/esm/guacamole-common.js', import.meta.url));
const CHROMIUM = process.env.GUACR_CHROMIUM || '/usr/bin/chromium';
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic',
  '--no-first-run', '--disable-background-networking', '--disable-component-update',
  '--disable-sync', '--disable-dev-shm-usage'];

const t0 = Date.now();
const elapsed = () => ((Date.now() - t0) / 1000).toFixed(2);
let verbose = false;
const debug = (...a) => { if (verbose) console.error(`[${elapsed()}s]`, ...a); };

function fail(msg) {
  console.error(`${PROG}: FAIL: ${msg}`);
  process.exit(1);
}

// ------------------------------------------------------------------ arguments

let opts;
try {
  ({ values: opts } = parseArgs({
    options: {
      host: { type: 'string', default: '127.0.0.1' },
      port: { type: 'string', default: '4822' },
      protocol: { type: 'string', default: 'ssh' },
      'ssh-host': { type: 'string', default: '127.0.0.1' },
      'ssh-port': { type: 'string', default: '2222' },
      'vnc-host': { type: 'string', default: '127.0.0.1' },
      'vnc-port': { type: 'string', default: '5902' },
      'rdp-host': { type: 'string', default: '127.0.0.1' },
      'rdp-port': { type: 'string', default: '3389' },
      security: { type: 'string', default: 'any' },
      user: { type: 'string' },
      password: { type: 'string' },
      screenshot: { type: 'string' },
      command: { type: 'string' },
      timeout: { type: 'string', default: '60' },
      verbose: { type: 'boolean', short: 'v', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  }));
} catch (e) {
  fail(`bad arguments: ${e.message}`);
}
if (opts.help) {
  console.log('usage: node gcjs_check.mjs --host H --port N [--protocol ssh] --ssh-port N --user U ' +
    '--password P [--screenshot FILE] [--command TEXT] [--timeout S] [-v]\n' +
    '       node gcjs_check.mjs --host H --port N --protocol vnc --vnc-port N [--vnc-host H] ' +
    '[--password P] [--screenshot FILE] [--command TEXT] [--timeout S] [-v]\n' +
    '       node gcjs_check.mjs --host H --port N --protocol rdp --rdp-port N [--rdp-host H] ' +
    '--user U --password P [--security any|nla|tls|rdp] [--screenshot FILE] [--command TEXT] ' +
    '[--timeout S] [-v]');
  process.exit(0);
}
// Protocol-specific defaults: an SSH login prompt, or a VNC desktop showing an xterm
// (scripts/peers.d/vnc.sh: TigerVNC Xvnc on 127.0.0.1:5902, security None), or an RDP
// desktop showing an xterm (scripts/peers.d/rdp.sh: xrdp with TLS on 127.0.0.1:3389).
const RDP = opts.protocol === 'rdp';
const VNC = opts.protocol === 'vnc';
const GRAPHICAL = VNC || RDP;
if (!GRAPHICAL && opts.protocol !== 'ssh') {
  fail(`--protocol must be ssh, vnc or rdp, not ${opts.protocol}`);
}
opts.user ??= RDP ? 'guacr-rdp' : 'guacr-pw';
opts.password ??= VNC ? '' : RDP ? 'guacr-rdp-pass1' : 'guacr-test-pw';
opts.screenshot ??= GRAPHICAL ? `/tmp/gcjs-${opts.protocol}.png` : '/tmp/gcjs.png';
opts.command ??= GRAPHICAL ? `echo gcjs-${opts.protocol}-ok` : 'echo gcjs-ok';
verbose = opts.verbose;
const DAEMON_PORT = Number(opts.port);
if (!Number.isInteger(DAEMON_PORT) || DAEMON_PORT <= 0) fail(`bad --port ${opts.port}`);

let WebSocketServer, chromium;
try {
  ({ WebSocketServer } = await import('ws'));
  ({ chromium } = await import('playwright-core'));
} catch (e) {
  fail(`node dependencies missing (${e.message}); run scripts/clients-setup.sh`);
}
if (!fs.existsSync(GCJS_ESM)) fail(`${GCJS_ESM} missing; run scripts/clients-setup.sh`);
if (!fs.existsSync(CHROMIUM)) fail(`${CHROMIUM} missing; run scripts/test-peers.sh install`);

// Hard overall limit: never hang.
const hardTimer = setTimeout(() => fail(`overall timeout (${opts.timeout}s)`),
  Number(opts.timeout) * 1000);
hardTimer.unref();

// ------------------------------------------------------------------ protocol helpers

/** Length of a string in Unicode code points (what Guacamole's LEN counts). */
function cpLength(s) {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) i++;
    }
    n++;
  }
  return n;
}

function encode(...elements) {
  return elements.map((e) => { const s = String(e); return `${cpLength(s)}.${s}`; }).join(',') + ';';
}

/**
 * Parses as many complete instructions as `s` holds, from its start. Lengths count code
 * points. Returns { instructions: [[opcode, ...args]], ends, end }: `ends[i]` is the UTF-16
 * index just past instruction i, `end` the one past the last complete instruction.
 * Throws on malformed input.
 */
function parseInstructions(s) {
  const instructions = [];
  const ends = [];
  let end = 0;
  const n = s.length;
  outer:
  while (end < n) {
    let j = end;
    const elements = [];
    for (;;) {
      let len = 0;
      let digits = 0;
      while (j < n) {
        const c = s.charCodeAt(j);
        if (c < 48 || c > 57) break;
        len = len * 10 + (c - 48);
        j++;
        if (++digits > 9) throw new Error(`element length too long at offset ${j}`);
      }
      if (j >= n) break outer;                       // incomplete
      if (digits === 0 || s[j] !== '.') {
        throw new Error(`expected LEN. at offset ${j}: ${JSON.stringify(s.slice(end, j + 20))}`);
      }
      j++;
      const start = j;
      for (let k = 0; k < len; k++) {
        if (j >= n) break outer;                     // incomplete
        const c = s.charCodeAt(j);
        j += (c >= 0xd800 && c <= 0xdbff) ? 2 : 1;
      }
      if (j >= n) break outer;                       // terminator not here yet
      elements.push(s.slice(start, j));
      const t = s[j++];
      if (t === ';') break;
      if (t !== ',') {
        throw new Error(`bad terminator ${JSON.stringify(t)} at offset ${j - 1}: ` +
          JSON.stringify(s.slice(end, j + 20)));
      }
    }
    instructions.push(elements);
    ends.push(j);
    end = j;
  }
  return { instructions, ends, end };
}

// ------------------------------------------------------------------ bridge

const stats = {
  tunnels: 0, fromDaemonInstr: 0, fromDaemonMsgs: 0, fromClientInstr: 0, pingsEchoed: 0,
  opcodes: {}, handshake: [], ready: null, closedBy: null,
};
const bridgeErrors = [];

const AUDIO_DEFAULT = ['audio/L8', 'audio/L16'];
const IMAGE_DEFAULT = ['image/jpeg', 'image/png', 'image/webp'];

function handleTunnel(ws, req) {
  stats.tunnels++;
  const query = new URL(req.url, 'http://bridge').searchParams;
  const first = (...names) => {
    for (const k of names) if (query.has(k)) return query.get(k);
    return null;
  };
  const all = (name, dflt) => (query.has(name) ? query.getAll(name).filter((v) => v !== '') : dflt);
  const tunnelId = crypto.randomUUID();
  const tcp = net.connect(DAEMON_PORT, opts.host);
  tcp.setNoDelay(true);
  const decoder = new StringDecoder('utf8');
  let buf = '';
  let phase = 'args';            // args -> ready -> pipe
  const pendingToDaemon = [];    // client instructions before `ready`
  let closed = false;

  const closeAll = (code, reason) => {
    if (closed) return;
    closed = true;
    try { ws.close(code, reason); } catch { /* already closing */ }
    tcp.destroy();
  };
  const bridgeError = (msg, status = 512) => {
    bridgeErrors.push(msg);
    debug('bridge error:', msg);
    closeAll(1011, String(status));
  };

  tcp.on('connect', () => {
    debug(`tcp connected to ${opts.host}:${DAEMON_PORT}`);
    tcp.write(encode('select', opts.protocol));
  });

  const toBrowser = (text) => {
    if (ws.readyState === ws.OPEN) ws.send(text);
  };

  const handshakeInstruction = (inst) => {
    const [op, ...args] = inst;
    stats.handshake.push(op);
    if (op === 'error') {
      // Let the client see it (it calls onerror); the tunnel needs its UUID first.
      toBrowser(encode('', tunnelId));
      toBrowser(encode(...inst));
      bridgeErrors.push(`daemon error during handshake: ${args.join(' / ')}`);
      setTimeout(() => closeAll(1000), 200);
      phase = 'dead';
      return;
    }
    if (phase === 'args' && op === 'args') {
      const hasVersion = args.length > 0 && args[0].startsWith('VERSION_');
      const names = hasVersion ? args.slice(1) : args;
      const out = [];
      out.push(encode('size',
        first('GUAC_WIDTH', 'width') || '1024',
        first('GUAC_HEIGHT', 'height') || '768',
        first('GUAC_DPI', 'dpi') || '96'));
      out.push(encode('audio', ...all('GUAC_AUDIO', AUDIO_DEFAULT)));
      out.push(encode('video', ...all('GUAC_VIDEO', [])));
      out.push(encode('image', ...all('GUAC_IMAGE', IMAGE_DEFAULT)));
      out.push(encode('timezone', first('GUAC_TIMEZONE') ||
        Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC'));
      if (hasVersion && args[0] >= 'VERSION_1_5_0') {
        out.push(encode('name', first('GUAC_NAME') || 'gcjs-check'));
      }
      const values = names.map((name) => query.get(name) ?? '');
      out.push(hasVersion ? encode('connect', 'VERSION_1_5_0', ...values)
        : encode('connect', ...values));
      debug(`args: ${args.length} elements; sending connect with ` +
        `${names.filter((n) => query.has(n)).join(',')}`);
      tcp.write(out.join(''));
      phase = 'ready';
      return;
    }
    if (phase === 'ready' && op === 'ready') {
      stats.ready = args[0] ?? '';
      debug(`ready ${stats.ready}`);
      // What Guacamole.WebSocketTunnel expects first: its UUID as an internal instruction.
      toBrowser(encode('', tunnelId));
      phase = 'pipe';
      for (const p of pendingToDaemon.splice(0)) tcp.write(p);
      return;
    }
    debug(`ignoring ${op} during handshake (phase ${phase})`);
  };

  tcp.on('data', (chunk) => {
    buf += decoder.write(chunk);
    if (buf.length > 4 * 1024 * 1024) return bridgeError('no complete instruction in 4 MiB');
    if (phase === 'dead') { buf = ''; return; }
    let parsed;
    try {
      parsed = parseInstructions(buf);
    } catch (e) {
      return bridgeError(`malformed data from daemon: ${e.message}`);
    }
    if (parsed.end === 0) return;
    let i = 0;
    let consumed = 0;
    // Handshake: instructions are consumed one by one until `ready`, the rest is piped.
    for (; i < parsed.instructions.length && (phase === 'args' || phase === 'ready'); i++) {
      handshakeInstruction(parsed.instructions[i]);
      consumed = parsed.ends[i];
    }
    if (phase === 'dead') { buf = ''; return; }
    for (let k = i; k < parsed.instructions.length; k++) {
      const op = parsed.instructions[k][0];
      stats.opcodes[op] = (stats.opcodes[op] || 0) + 1;
      stats.fromDaemonInstr++;
    }
    if (phase === 'pipe' && parsed.end > consumed) {
      toBrowser(buf.slice(consumed, parsed.end));
      stats.fromDaemonMsgs++;
    }
    buf = buf.slice(parsed.end);
  });

  tcp.on('end', () => {
    debug('daemon closed the connection');
    stats.closedBy = stats.closedBy || 'daemon';
    if (buf.length) bridgeErrors.push(`daemon closed with a partial instruction: ${buf.slice(0, 80)}`);
    closeAll(1000);
  });
  tcp.on('error', (e) => {
    if (closed) return;
    bridgeError(`daemon connection ${opts.host}:${DAEMON_PORT}: ${e.message}`,
      e.code === 'ECONNREFUSED' ? 519 : 515);
  });

  ws.on('message', (data) => {
    const text = data.toString('utf8');
    let parsed;
    try {
      parsed = parseInstructions(text);
    } catch (e) {
      return bridgeError(`malformed data from client: ${e.message}`, 768);
    }
    if (parsed.end !== text.length) {
      return bridgeError(`partial instruction from client: ${text.slice(0, 80)}`, 768);
    }
    for (const inst of parsed.instructions) {
      if (inst[0] === '') {                  // internal tunnel instruction
        if (inst[1] === 'ping') {
          ws.send(encode(...inst));
          stats.pingsEchoed++;
        }
        continue;
      }
      stats.fromClientInstr++;
      const wire = encode(...inst);
      if (phase === 'pipe') tcp.write(wire);
      else pendingToDaemon.push(wire);
    }
  });
  ws.on('close', () => {
    stats.closedBy = stats.closedBy || 'browser';
    debug('websocket closed');
    closed = true;
    tcp.end();
    setTimeout(() => tcp.destroy(), 1000).unref();
  });
  ws.on('error', (e) => bridgeErrors.push(`websocket: ${e.message}`));
}

// ------------------------------------------------------------------ page

const PAGE = `<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>gcjs check</title>
<style>html,body{margin:0;background:#333}
/* A stacking context, as the Guacamole web app has: the default layer canvas has z-index -1. */
#display{position:relative;isolation:isolate;display:inline-block}</style></head>
<body>
<div id="display"></div>
<script type="module">
import Guacamole from '/guacamole-common.js';
window.Guacamole = Guacamole;
window.__errors = [];
window.__states = [];
window.__tunnelStates = [];
window.start = (query) => {
  const tunnel = new Guacamole.WebSocketTunnel('ws://' + location.host + '/tunnel');
  tunnel.onerror = (s) => window.__errors.push('tunnel error ' + s.code + ': ' + s.message);
  tunnel.onstatechange = (s) => window.__tunnelStates.push(s);
  const client = new Guacamole.Client(tunnel);
  client.onerror = (s) => window.__errors.push('client error ' + s.code + ': ' + s.message);
  client.onstatechange = (s) => window.__states.push(s);
  document.getElementById('display').appendChild(client.getDisplay().getElement());
  window.client = client;
  window.tunnel = tunnel;
  client.connect(query);
};
// The whole display, all layers composited: guacd's terminal draws its text on a child
// layer of the default layer, so the default layer's own canvas shows only background.
function pixels() {
  const display = window.client.getDisplay();
  const w = display.getWidth(), h = display.getHeight();
  if (!w || !h) return null;
  const canvas = display.flatten();
  const data = canvas.getContext('2d', { willReadFrequently: true }).getImageData(0, 0, w, h).data;
  return { w, h, px: new Uint32Array(data.buffer.slice(0)) };
}
// Pixels that differ from the most common colour (the terminal background).
window.ink = () => {
  const p = pixels();
  if (!p) return { w: 0, h: 0, ink: 0 };
  const hist = new Map();
  for (let i = 0; i < p.px.length; i += 7) hist.set(p.px[i], (hist.get(p.px[i]) || 0) + 1);
  let bg = 0, best = -1;
  for (const [c, n] of hist) if (n > best) { best = n; bg = c; }
  let ink = 0;
  for (let i = 0; i < p.px.length; i++) if (p.px[i] !== bg && (p.px[i] >>> 24) !== 0) ink++;
  return { w: p.w, h: p.h, ink, bg: bg >>> 0 };
};
// Distinct opaque colours on the display (sampled).
window.colours = () => {
  const p = pixels();
  if (!p) return 0;
  const seen = new Set();
  for (let i = 0; i < p.px.length; i += 3) if ((p.px[i] >>> 24) !== 0) seen.add(p.px[i]);
  return seen.size;
};
window.snapshot = () => { const p = pixels(); window.__snap = p; return p ? p.px.length : 0; };
window.changed = () => {
  const p = pixels(), s = window.__snap;
  if (!p || !s) return -1;
  if (p.px.length !== s.px.length) return p.px.length;
  let n = 0;
  for (let i = 0; i < p.px.length; i++) if (p.px[i] !== s.px[i]) n++;
  return n;
};
window.__ready = true;
</script>
</body></html>
`;

function serve(req, res) {
  const path = new URL(req.url, 'http://bridge').pathname;
  if (path === '/' || path === '/index.html') {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
    res.end(PAGE);
  } else if (path === '/guacamole-common.js') {
    res.writeHead(200, { 'content-type': 'text/javascript; charset=utf-8' });
    fs.createReadStream(GCJS_ESM).pipe(res);
  } else if (path === '/favicon.ico') {
    res.writeHead(204);
    res.end();
  } else {
    res.writeHead(404, { 'content-type': 'text/plain' });
    res.end('not found');
  }
}

// ------------------------------------------------------------------ main

const server = http.createServer(serve);
const wss = new WebSocketServer({
  server,
  path: '/tunnel',
  handleProtocols: (protocols) => (protocols.has('guacamole') ? 'guacamole' : false),
});
wss.on('connection', handleTunnel);
await new Promise((resolve, reject) => {
  server.once('error', reject);
  server.listen(0, '127.0.0.1', resolve);
});
const httpPort = server.address().port;
debug(`bridge on http://127.0.0.1:${httpPort}/ -> ${opts.host}:${DAEMON_PORT}`);

let browser;
const pageErrors = [];
async function cleanup() {
  try { if (browser) await browser.close(); } catch { /* ignore */ }
  wss.close();
  server.close();
  server.closeAllConnections?.();
}

async function check() {
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
  const page = await browser.newPage({ viewport: { width: 1024, height: 768 } });
  page.on('pageerror', (e) => pageErrors.push(`pageerror: ${e.message}`));
  page.on('console', (m) => {
    debug(`console.${m.type()}: ${m.text()}`);
    if (m.type() === 'error') pageErrors.push(`console.error: ${m.text()}`);
  });
  await page.goto(`http://127.0.0.1:${httpPort}/`);
  await page.waitForFunction(() => window.__ready === true, null, { timeout: 10000 });

  const params = VNC
    ? { hostname: opts['vnc-host'], port: opts['vnc-port'], width: '1024', height: '768' }
    : RDP
      ? { hostname: opts['rdp-host'], port: opts['rdp-port'], username: opts.user, password: opts.password,
        security: opts.security, 'ignore-cert': 'true', width: '1024', height: '768' }
      : { hostname: opts['ssh-host'], port: opts['ssh-port'], username: opts.user, password: opts.password,
        width: '1024', height: '768' };
  if (VNC && opts.password) params.password = opts.password;
  const query = new URLSearchParams(params).toString();
  await page.evaluate((q) => window.start(q), query);

  const status = () => page.evaluate(() => ({
    states: window.__states, tunnelStates: window.__tunnelStates, errors: window.__errors,
    state: window.__states.length ? window.__states[window.__states.length - 1] : -1,
  }));
  const errorsSoFar = async () => {
    const s = await status();
    return [...bridgeErrors, ...s.errors, ...pageErrors];
  };
  const describe = async () => {
    const s = await status();
    return `client states ${JSON.stringify(s.states)}, tunnel states ${JSON.stringify(s.tunnelStates)}, ` +
      `handshake ${JSON.stringify(stats.handshake)}, ready=${stats.ready}, ` +
      `daemon instructions ${JSON.stringify(stats.opcodes)}, closed by ${stats.closedBy}`;
  };
  const poll = async (what, seconds, probe) => {
    const end = Date.now() + seconds * 1000;
    let last;
    for (;;) {
      const errs = await errorsSoFar();
      if (errs.length) throw new Error(`${what}: ${errs.join(' | ')}; ${await describe()}`);
      last = await probe();
      if (last.ok) return last;
      if (Date.now() > end) {
        throw new Error(`${what}: not reached in ${seconds}s (last ${JSON.stringify(last)}); ` +
          await describe());
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  };

  // 1. CONNECTED and a non-trivial picture: SSH login done and prompt drawn; VNC/RDP: an
  // xterm (white, with text) on a black root window, so many pixels differ from the
  // dominant colour and there are several colours.
  const MIN_INK = GRAPHICAL ? 5000 : 100;
  const first = await poll('waiting for CONNECTED and a drawn screen', 25, async () => {
    const s = await status();
    const ink = s.state === 3 ? await page.evaluate(() => window.ink()) : { ink: 0 };
    const colours = s.state === 3 ? await page.evaluate(() => window.colours()) : 0;
    return { ok: s.state === 3 && ink.ink >= MIN_INK && colours >= 2, state: s.state, colours, ...ink };
  });
  debug(`connected: ${JSON.stringify(first)}`);
  // Let the first screen settle (login output, prompt): the reference picture is taken once
  // nothing changed for 1.5 s (at most 10 s), so that only typing can change it later.
  await page.evaluate(() => window.snapshot());
  let quiet = 0;
  for (let i = 0; i < 20 && quiet < 3; i++) {
    await new Promise((r) => setTimeout(r, 500));
    const n = await page.evaluate(() => window.changed());
    quiet = n === 0 ? quiet + 1 : 0;
    await page.evaluate(() => window.snapshot());
  }
  if (quiet < 3) debug('screen did not settle in 10 s; typing anyway');
  const settled = await page.evaluate(() => window.ink());
  debug(`settled: ${JSON.stringify(settled)}`);

  // 2. Type a command and wait for the picture to change.
  if (GRAPHICAL) {
    // No window manager: keyboard focus follows the pointer, so put it over the xterm.
    await page.evaluate(() => {
      window.client.sendMouseState(new window.Guacamole.Mouse.State({ x: 300, y: 200 }));
    });
  }
  const keysyms = [...opts.command].map((ch) => {
    const cp = ch.codePointAt(0);
    return cp >= 0x20 && cp <= 0x7e ? cp : 0x01000000 | cp;
  });
  keysyms.push(0xff0d);                                  // Return
  await page.evaluate(async (ks) => {
    for (const k of ks) {
      window.client.sendKeyEvent(1, k);
      window.client.sendKeyEvent(0, k);
      await new Promise((r) => setTimeout(r, 20));
    }
  }, keysyms);
  const MIN_CHANGED = 200;
  const typed = await poll('waiting for the typed command to change the screen', 15, async () => {
    const n = await page.evaluate(() => window.changed());
    return { ok: n >= MIN_CHANGED, changed: n };
  });
  await new Promise((r) => setTimeout(r, 1000));       // let output and the next prompt land
  const finalInk = await page.evaluate(() => window.ink());
  const finalChanged = await page.evaluate(() => window.changed());
  await page.screenshot({ path: opts.screenshot });

  const s = await status();
  const errs = await errorsSoFar();
  if (errs.length) throw new Error(`errors after typing: ${errs.join(' | ')}; ${await describe()}`);
  if (s.state !== 3) throw new Error(`client left CONNECTED after typing; ${await describe()}`);
  if (stats.pingsEchoed === 0) throw new Error('the tunnel sent no ping (unexpected)');

  await page.evaluate(() => window.client.disconnect());
  await new Promise((r) => setTimeout(r, 200));
  return { first, settled, typed, finalInk, finalChanged };
}

let result;
try {
  result = await check();
} catch (e) {
  await cleanup();
  fail(e.message);
}
await cleanup();
const draw = ['img', 'png', 'copy', 'rect', 'cfill', 'transfer']
  .filter((k) => stats.opcodes[k]).map((k) => `${k}=${stats.opcodes[k]}`).join(',');
console.log(`${PROG}: OK ${opts.protocol} connected id=${stats.ready} screen ${result.finalInk.w}x${result.finalInk.h} ` +
  `ink=${result.settled.ink}->${result.finalInk.ink} changed-after-typing=${result.finalChanged}px ` +
  `daemon-instructions=${stats.fromDaemonInstr} (sync=${stats.opcodes.sync || 0} ${draw}) ` +
  `client-instructions=${stats.fromClientInstr} pings=${stats.pingsEchoed} ` +
  `screenshot=${opts.screenshot} in ${elapsed()}s`);
process.exit(0);
