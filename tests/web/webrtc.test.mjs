// End-to-end tests of the WebRTC transport (issue 9): the web client's data-channel tunnel
// and H.264 video view against the real guacr binary, the real x11vnc-on-Xvfb VNC peer
// (scripts/peers.d/vnc.sh, :11 with an xterm) and the real OpenSSH peer, in Debian's
// Chromium. ICE needs a non-loopback interface with an address (Chromium gathers no
// candidates with only `lo`).
// Run: scripts/web-test.sh (both databases), or node --test tests/web/webrtc.test.mjs with
// guacr and web/dist built and the peers started.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  ApiClient, colours, diff, Guacr, launchBrowser, loginUi, newPage, peers, selectAllText,
  settle, shot, snap, sshReachable, typeLine, waitConnected,
} from './harness.mjs';

function portOpen(host, port) {
  return new Promise((resolve) => {
    const s = net.connect(Number(port), host);
    s.setTimeout(2000);
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
    s.once('timeout', () => { s.destroy(); resolve(false); });
  });
}

/** inbound-rtp video and data-channel figures from the page's peer connection. */
async function rtcStats(page) {
  return page.evaluate(async () => {
    const pc = window.__guacr?.pc;
    if (!pc) return null;
    const out = { framesDecoded: 0, frameWidth: 0, frameHeight: 0, codec: '', channels: [], connection: pc.connectionState, keyFramesDecoded: 0 };
    const stats = await pc.getStats();
    const codecs = new Map();
    stats.forEach((r) => { if (r.type === 'codec') codecs.set(r.id, r.mimeType); });
    stats.forEach((r) => {
      if (r.type === 'inbound-rtp' && r.kind === 'video') {
        out.framesDecoded = r.framesDecoded ?? 0;
        out.keyFramesDecoded = r.keyFramesDecoded ?? 0;
        out.frameWidth = r.frameWidth ?? 0;
        out.frameHeight = r.frameHeight ?? 0;
        out.codec = codecs.get(r.codecId) || '';
      }
      if (r.type === 'data-channel') out.channels.push({ label: r.label, state: r.state });
    });
    return out;
  });
}

/** Copies the decoded video frame's pixels into window.__vsnaps[name]. */
async function videoSnap(page, name) {
  await page.evaluate((n) => {
    const v = window.__guacr.video;
    const c = document.createElement('canvas');
    c.width = v.videoWidth;
    c.height = v.videoHeight;
    const ctx = c.getContext('2d', { willReadFrequently: true });
    ctx.drawImage(v, 0, 0);
    window.__vsnaps = window.__vsnaps || {};
    window.__vsnaps[n] = ctx.getImageData(0, 0, c.width, c.height);
  }, name);
}

/** Pixels of two video snapshots that differ clearly (H.264 is lossy: small noise ignored). */
async function videoDiff(page, a, b) {
  return page.evaluate(([x, y]) => {
    const A = window.__vsnaps[x];
    const B = window.__vsnaps[y];
    if (A.width !== B.width || A.height !== B.height) return { changed: -1 };
    let changed = 0;
    for (let i = 0; i < A.data.length; i += 4) {
      const d = Math.abs(A.data[i] - B.data[i]) + Math.abs(A.data[i + 1] - B.data[i + 1]) + Math.abs(A.data[i + 2] - B.data[i + 2]);
      if (d > 96) changed++;
    }
    return { changed };
  }, [a, b]);
}

/** Distinct coarse colours in a video snapshot (a black or empty frame has one). */
async function videoColours(page, name) {
  return page.evaluate((n) => {
    const d = window.__vsnaps[n].data;
    const set = new Set();
    for (let i = 0; i < d.length; i += 64) set.add(((d[i] >> 5) << 6) | ((d[i + 1] >> 5) << 3) | (d[i + 2] >> 5));
    return set.size;
  }, name);
}

/** Waits until the decoded video stops changing (the xterm has finished echoing). */
async function videoSettle(page, quietMs = 700, timeout = 10000) {
  const end = Date.now() + timeout;
  let n = 0;
  await videoSnap(page, '__vs0');
  for (;;) {
    await page.waitForTimeout(quietMs);
    await videoSnap(page, `__vs${++n}`);
    if ((await videoDiff(page, `__vs${n - 1}`, `__vs${n}`)).changed === 0 || Date.now() > end) return;
  }
}

/** Puts the remote pointer over the xterm (no window manager: focus follows the pointer). */
async function pointAtCentre(page) {
  const box = await page.locator('#display-host .display').boundingBox();
  assert.ok(box && box.width > 0, 'the display element has a size');
  await page.mouse.move(box.x + box.width / 2, box.y + box.height / 3, { steps: 3 });
  await page.mouse.move(box.x + box.width / 2 + 5, box.y + box.height / 3 + 5, { steps: 2 });
}

async function typeInto(page, text) {
  await page.locator('#display-host').focus();
  await page.keyboard.type(text, { delay: 20 });
  await page.keyboard.press('Enter');
}

async function infoTransport(page) {
  await page.getByRole('button', { name: 'Open menu' }).click();
  const t = await page.locator('#info-transport').textContent();
  await page.keyboard.press('Escape');
  await page.getByRole('button', { name: 'Close menu' }).click().catch(() => {});
  return t;
}

describe('guacr web client over WebRTC', () => {
  let g; let browser; let env; let api;
  let vnc; let ssh;
  const bob = { username: 'bob', password: 'bob-Secret-42' };
  const pages = [];

  before(async () => {
    env = peers();
    const vncHost = env.GUACR_TEST_VNC_HOST;
    const vncPort = env.GUACR_TEST_VNC_X11VNC_PORT;
    if (!vncHost || !vncPort) throw new Error('GUACR_TEST_VNC_* missing from the peers env (scripts/test-peers.sh start runs scripts/peers.d/vnc.sh)');
    if (!(await portOpen(vncHost, vncPort))) throw new Error(`x11vnc test peer not reachable on ${vncHost}:${vncPort} (scripts/test-peers.sh start)`);
    if (!(await sshReachable(env.GUACR_TEST_HOST, env.GUACR_TEST_SSH_PORT))) {
      throw new Error(`OpenSSH test peer not reachable on ${env.GUACR_TEST_HOST}:${env.GUACR_TEST_SSH_PORT} (scripts/test-peers.sh start)`);
    }
    g = await Guacr.start();
    const cfg = await fetch(`${g.base}/tunnel/webrtc`).then(async (r) => ({ status: r.status, body: await r.text() }));
    let offer = null;
    try { offer = JSON.parse(cfg.body); } catch { /* not JSON */ }
    if (cfg.status !== 200 || !offer || offer.enabled !== true) {
      throw new Error(`guacr does not offer WebRTC: GET /tunnel/webrtc answered ${cfg.status} ${cfg.body.slice(0, 120)}`);
    }
    api = new ApiClient(g.base);
    await api.login(g.admin.username, g.admin.password);
    vnc = await api.call('POST', '/api/admin/connections', {
      name: 'x11vnc desktop', protocol: 'vnc', group: '', description: 'x11vnc on Xvfb with an xterm',
      params: { hostname: vncHost, port: String(vncPort), password: env.GUACR_TEST_VNC_X11VNC_PASSWORD },
    }, { expect: 201 });
    ssh = await api.call('POST', '/api/admin/connections', {
      name: 'loopback ssh', protocol: 'ssh', group: '', description: '',
      params: {
        hostname: env.GUACR_TEST_HOST, port: String(env.GUACR_TEST_SSH_PORT),
        username: env.GUACR_TEST_PW_USER, password: env.GUACR_TEST_PW_PASSWORD,
        ...(env.GUACR_TEST_SSH_HOSTKEY_PUB ? { 'host-key': env.GUACR_TEST_SSH_HOSTKEY_PUB } : {}),
      },
    }, { expect: 201 });
    // bob may use nothing.
    await api.call('POST', '/api/admin/users', { id: '', username: bob.username, display_name: 'Bob', password: bob.password, admin: false });
    browser = await launchBrowser();
  });

  after(async () => {
    for (const p of pages) await shot(p, `webrtc-final-${p.testName}`).catch(() => {});
    for (const p of pages) await p.context().close().catch(() => {});
    await browser?.close().catch(() => {});
    await g?.stop();
  });

  async function page(name, opts, init) {
    const p = await newPage(browser, name, opts);
    p.testName = name;
    pages.push(p);
    // Signalling requests, and whether they carried the CSRF token.
    p.signalling = [];
    p.sockets = 0;
    p.on('request', (r) => {
      if (new URL(r.url()).pathname === '/tunnel/webrtc') p.signalling.push({ method: r.method(), csrf: Boolean(r.headers()['x-csrf-token']) });
    });
    p.on('websocket', () => { p.sockets++; });
    if (init) await p.addInitScript(init);
    await loginUi(p, g.base, g.admin.username, g.admin.password);
    await p.getByRole('heading', { name: 'Your connections' }).waitFor();
    return p;
  }

  it('VNC over WebRTC: data channel open, H.264 video plays at the desktop size, typing changes the video', async () => {
    const p = await page('vnc-video');
    await p.goto(`${g.base}/#/client/${encodeURIComponent(vnc.id)}`);
    await waitConnected(p, 30000);
    assert.equal(await p.evaluate(() => window.__guacr.transport), 'WebRTC (H.264 video)');
    assert.equal(p.sockets, 0, 'no WebSocket was opened');
    const post = p.signalling.find((s) => s.method === 'POST');
    assert.ok(post, 'the offer was POSTed to /tunnel/webrtc');
    assert.ok(post.csrf, 'the cookie-authorised signalling POST carried X-CSRF-Token');

    // The video plays: frames decoded, the element has the desktop's size.
    await p.waitForFunction(() => { const v = window.__guacr.video; return v && v.videoWidth > 0 && !v.paused; }, null, { timeout: 15000 });
    const st0 = await rtcStats(p);
    assert.equal(st0.connection, 'connected');
    assert.deepEqual(st0.channels.filter((c) => c.label === 'guacamole').map((c) => c.state), ['open'], 'one open data channel "guacamole"');
    assert.match(st0.codec, /^video\/H264$/i);
    assert.ok(st0.framesDecoded >= 1, `frames decoded: ${st0.framesDecoded}`);
    const dims = await p.evaluate(() => {
      const v = window.__guacr.video;
      const d = window.__guacr.display;
      return { vw: v.videoWidth, vh: v.videoHeight, dw: d.getWidth(), dh: d.getHeight(), muted: v.muted, autoplay: v.autoplay, inline: v.hasAttribute('playsinline'),
        target: window.__guacr.pc.getReceivers().filter((r) => r.track.kind === 'video').map((r) => r.jitterBufferTarget) };
    });
    assert.ok(dims.dw > 0 && dims.dh > 0, 'the display has the desktop size');
    assert.deepEqual([dims.vw, dims.vh], [dims.dw, dims.dh], 'videoWidth/videoHeight equal the desktop');
    assert.deepEqual([dims.muted, dims.autoplay, dims.inline], [true, true, true], 'video is muted, autoplay, playsinline');
    assert.deepEqual(dims.target, [0], 'jitterBufferTarget 0 on the video receiver');

    // Scaled exactly like the display, under it.
    const boxes = await p.evaluate(() => {
      const v = window.__guacr.video.getBoundingClientRect();
      const inner = window.__guacr.display.getElement().lastElementChild.getBoundingClientRect();
      return { v: [v.x, v.y, v.width, v.height], d: [inner.x, inner.y, inner.width, inner.height] };
    });
    for (let i = 0; i < 4; i++) assert.ok(Math.abs(boxes.v[i] - boxes.d[i]) <= 1, `video box ${boxes.v} matches display box ${boxes.d}`);

    // The screen is not drawn on layer 0 in video mode: it stays transparent.
    const opaque = await p.evaluate(() => {
      const c = window.__guacr.display.getDefaultLayer().getCanvas();
      const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
      let n = 0;
      for (let i = 3; i < d.length; i += 4) if (d[i] !== 0) n++;
      return n;
    });
    assert.equal(opaque, 0, 'layer 0 has no opaque pixels in video mode');

    await pointAtCentre(p);
    // The first frame may precede the VNC server's first full update: wait for the desktop.
    const showEnd = Date.now() + 15000;
    let vc = 0;
    for (;;) {
      await videoSettle(p);
      await videoSnap(p, 'before');
      vc = await videoColours(p, 'before');
      if (vc > 1 || Date.now() > showEnd) break;
    }
    if (vc <= 1) await shot(p, 'webrtc-vnc-video-flat');
    assert.ok(vc > 1, `the decoded video shows the desktop (not one flat colour): ${vc} colours, ${JSON.stringify(await rtcStats(p))}`);
    const f0 = (await rtcStats(p)).framesDecoded;
    await typeInto(p, 'echo webrtc-video-typed-0123456789');
    await videoSettle(p);
    await videoSnap(p, 'after');
    const d = await videoDiff(p, 'before', 'after');
    const f1 = (await rtcStats(p)).framesDecoded;
    await shot(p, 'webrtc-vnc-video');
    assert.ok(d.changed > 150, `typing into the xterm changes the decoded video (${d.changed} pixels)`);
    assert.ok(f1 > f0, `framesDecoded grows while typing (${f0} → ${f1})`);
    assert.match(await infoTransport(p), /^WebRTC \(H\.264 video\)$/);
    await p.getByRole('button', { name: 'Open menu' }).click();
    await p.locator('#disconnect').click();
    await p.locator('#status-title').filter({ hasText: 'Disconnected' }).waitFor();
  });

  it('VNC over WebRTC with ?video=0: the data channel carries img, the canvas shows the desktop, no video plays', async () => {
    const p = await page('vnc-novideo');
    await p.goto(`${g.base}/#/client/${encodeURIComponent(vnc.id)}?video=0`);
    await waitConnected(p, 30000);
    assert.equal(await p.evaluate(() => window.__guacr.transport), 'WebRTC (data channel)');
    await settle(p);
    assert.ok(await colours(p) > 1, 'the canvas shows the desktop');
    const playing = await p.evaluate(() => [...document.querySelectorAll('video')].filter((v) => !v.hidden && !v.paused && v.videoWidth > 0).length);
    assert.equal(playing, 0, 'no video element is playing');
    assert.equal(await p.evaluate(() => window.__guacr.video), null);
    const st = await rtcStats(p);
    assert.deepEqual(st.channels.filter((c) => c.label === 'guacamole').map((c) => c.state), ['open']);
    assert.equal(st.framesDecoded, 0, 'no video frames');
    await pointAtCentre(p);
    await settle(p);
    await snap(p, 'a');
    await typeInto(p, 'echo webrtc-img-typed-9876543210');
    await settle(p);
    await snap(p, 'b');
    const d = await diff(p, 'a', 'b');
    await shot(p, 'webrtc-vnc-img');
    assert.ok(d.changed > 150, `typing changes the canvas (${d.changed} pixels)`);
    assert.match(await infoTransport(p), /^WebRTC \(data channel\)$/);
    // The menu's option is the same switch, remembered for next time.
    await p.getByRole('button', { name: 'Open menu' }).click();
    assert.equal(await p.locator('#video-enabled').isChecked(), false, 'the menu shows video off (from ?video=0)');
    await p.locator('#disconnect').click();
  });

  it('many-colour screen content arrives as lossless WebP and the canvas shows it exactly', async () => {
    // A 320x200 picture with ~64,000 colours (gradients + noise) in a window
    // on the x11vnc desktop (xwud shows an XWD file we write).
    const [w, h, x0, y0] = [320, 200, 500, 300];
    const pixels = Buffer.alloc(w * h * 4);
    let seed = 7;
    for (let i = 0; i < w * h; i++) {
      seed = (seed * 1103515245 + 12345) >>> 0;
      const [x, y] = [i % w, Math.floor(i / w)];
      pixels.writeUInt32LE(((x * 255 / w) << 16) | ((y * 255 / h) << 8) | (seed >>> 24), i * 4);
    }
    const name = Buffer.from('guacr-webp\0');
    const header = Buffer.alloc(100);
    [100 + name.length, 7, 2, 24, w, h, 0, 0, 32, 0, 32, 32, w * 4, 4, 0xff0000, 0xff00, 0xff, 8, 0, 0, w, h, 0, 0, 0]
      .forEach((v, i) => header.writeUInt32BE(v, i * 4));
    const file = path.join(os.tmpdir(), `guacr-webp-${process.pid}.xwd`);
    fs.writeFileSync(file, Buffer.concat([header, name, pixels]));
    const viewer = spawn('xwud', ['-in', file, '-geometry', `+${x0}+${y0}`], {
      env: { ...process.env, DISPLAY: env.GUACR_TEST_VNC_X11VNC_DISPLAY }, stdio: 'ignore',
    });
    try {
      const p = await page('vnc-webp');
      const images = [];
      p.on('websocket', (ws) => ws.on('framereceived', (f) => {
        for (const m of String(f.payload).matchAll(/3\.img,[^;]*?,(\d+)\.(image\/[a-z]+),/g)) images.push(m[2]);
      }));
      await p.goto(`${g.base}/#/client/${encodeURIComponent(vnc.id)}?transport=websocket&video=0`);
      await waitConnected(p, 30000);
      // JPEG first while it changes, then the exact pixels (refinement).
      const want = [];
      for (let i = 0; i < w * h; i++) {
        const v = pixels.readUInt32LE(i * 4);
        want.push((v >>> 16) & 255, (v >>> 8) & 255, v & 255, 255);
      }
      const region = () => p.evaluate(([rx, ry, rw, rh]) => Array.from(
        window.__guacr.display.flatten().getContext('2d').getImageData(rx, ry, rw, rh).data), [x0, y0, w, h]);
      const deadline = Date.now() + 20000;
      let got = await region();
      while (got.some((v, i) => v !== want[i]) && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 500));
        got = await region();
      }
      const bad = got.findIndex((v, i) => v !== want[i]);
      assert.equal(bad, -1, `canvas pixel ${Math.floor(bad / 4) % w},${Math.floor(bad / 4 / w)} differs (images: ${[...new Set(images)]})`);
      assert.ok(images.includes('image/webp'), `the picture came as WebP (images: ${[...new Set(images)]})`);
      await shot(p, 'webp');
    } finally {
      viewer.kill();
      fs.rmSync(file, { force: true });
    }
  });

  it('the menu option turns video off and on (reconnects, remembered)', async () => {
    const p = await page('vnc-toggle');
    await p.goto(`${g.base}/#/client/${encodeURIComponent(vnc.id)}`);
    await waitConnected(p, 30000);
    assert.equal(await p.evaluate(() => window.__guacr.transport), 'WebRTC (H.264 video)');
    await p.getByRole('button', { name: 'Open menu' }).click();
    await p.locator('#video-enabled').uncheck();
    await p.waitForFunction(() => window.__guacr.state === 3 && window.__guacr.transport === 'WebRTC (data channel)', null, { timeout: 30000 });
    assert.equal(await p.evaluate(() => localStorage.getItem('guacr.video')), '0');
    // A new visit keeps the choice.
    await p.goto(`${g.base}/#/`);
    await p.goto(`${g.base}/#/client/${encodeURIComponent(vnc.id)}`);
    await waitConnected(p, 30000);
    assert.equal(await p.evaluate(() => window.__guacr.transport), 'WebRTC (data channel)');
    await p.getByRole('button', { name: 'Open menu' }).click();
    await p.locator('#video-enabled').check();
    await p.waitForFunction(() => window.__guacr.state === 3 && window.__guacr.transport === 'WebRTC (H.264 video)', null, { timeout: 30000 });
    await p.getByRole('button', { name: 'Open menu' }).click();
    await p.locator('#disconnect').click();
  });

  it('SSH over the data channel works like over WebSocket (echo visible on the canvas)', async () => {
    const p = await page('ssh-datachannel');
    await p.goto(`${g.base}/#/client/${encodeURIComponent(ssh.id)}`);
    await waitConnected(p, 30000);
    assert.equal(await p.evaluate(() => window.__guacr.transport), 'WebRTC (data channel)');
    assert.equal(p.sockets, 0, 'no WebSocket was opened');
    assert.match(await p.evaluate(() => window.__guacr.uuid || ''), /^[0-9a-f-]{36}$/i, 'the tunnel uuid came first on the channel');
    await settle(p);
    await snap(p, 'before');
    await typeLine(p, 'echo hello-over-webrtc');
    await settle(p);
    await snap(p, 'after');
    assert.ok((await diff(p, 'before', 'after')).changed > 100, 'typing changes the canvas');
    const text = await selectAllText(p);
    assert.match(text, /hello-over-webrtc\s*\n\s*hello-over-webrtc/, `the command and its output are on screen:\n${text}`);
    await shot(p, 'webrtc-ssh');
    // Share links use the tunnel uuid, as over WebSocket.
    await p.getByRole('button', { name: 'Open menu' }).click();
    await p.locator('#share-ro').click();
    await p.locator('#share-url-ro').waitFor();
    assert.match(await p.locator('#share-url-ro').inputValue(), /#\/share\//);
    await p.locator('#disconnect').click();
    await p.locator('#status-title').filter({ hasText: 'Disconnected' }).waitFor();
  });

  it('a dropped WebRTC link shows why and reconnects by itself', async () => {
    const p = await page('rtc-drop');
    await p.goto(`${g.base}/#/client/${encodeURIComponent(ssh.id)}`);
    await waitConnected(p, 30000);
    assert.equal(await p.evaluate(() => window.__guacr.transport), 'WebRTC (data channel)');
    const uuid = await p.evaluate(() => window.__guacr.uuid);
    // The peer connection dies without a goodbye (as on a network loss): no more data.
    await p.evaluate(() => window.__guacr.pc.close());
    await p.locator('#status-title').filter({ hasText: 'Connection lost' }).waitFor({ timeout: 30000 });
    assert.match(await p.locator('#status-message').textContent(), /Reconnecting in \d+ s/);
    await p.waitForFunction((old) => window.__guacr.state === 3 && window.__guacr.uuid && window.__guacr.uuid !== old, uuid, { timeout: 40000 });
    assert.equal(await p.evaluate(() => window.__guacr.transport), 'WebRTC (data channel)', 'reconnected over WebRTC');
    await p.getByRole('button', { name: 'Open menu' }).click();
    await p.locator('#disconnect').click();
  });

  it('falls back to WebSocket when the browser has no RTCPeerConnection', async () => {
    const p = await page('no-rtcpeerconnection', undefined, () => {
      delete window.RTCPeerConnection;
      delete window.webkitRTCPeerConnection;
    });
    assert.equal(await p.evaluate(() => typeof window.RTCPeerConnection), 'undefined');
    await p.goto(`${g.base}/#/client/${encodeURIComponent(vnc.id)}`);
    await waitConnected(p, 30000);
    assert.equal(await p.evaluate(() => window.__guacr.transport), 'WebSocket');
    assert.match(await p.evaluate(() => window.__guacr.fallbackReason || ''), /no WebRTC/);
    assert.equal(p.signalling.length, 0, 'no signalling was attempted');
    await settle(p);
    assert.ok(await colours(p) > 1, 'the desktop is drawn on the canvas');
    await pointAtCentre(p);
    await settle(p);
    await snap(p, 'a');
    await typeInto(p, 'echo over-websocket-fallback');
    await settle(p);
    await snap(p, 'b');
    assert.ok((await diff(p, 'a', 'b')).changed > 150, 'typing works over the WebSocket');
    assert.equal(await infoTransport(p), 'WebSocket');
    await p.getByRole('button', { name: 'Open menu' }).click();
    assert.match(await p.locator('#info-fallback').textContent(), /not used: .*no WebRTC/);
    await p.locator('#disconnect').click();
  });

  it('falls back to WebSocket when signalling fails (server error), WebRTC is off, or the channel does not open in time', async () => {
    // 1. The endpoint answers 503.
    const p = await page('signalling-refused');
    let refused = 0;
    await p.route(/\/tunnel\/webrtc$/, (r) => {
      if (r.request().method() !== 'POST') return r.continue();
      refused++;
      return r.fulfill({ status: 503, contentType: 'application/json', headers: { 'Guacamole-Status-Code': '513', 'Guacamole-Error-Message': 'WebRTC is busy.' }, body: JSON.stringify({ error: 'WebRTC is busy.', code: 'internal' }) });
    });
    await p.goto(`${g.base}/#/client/${encodeURIComponent(ssh.id)}`);
    await waitConnected(p, 30000);
    assert.equal(refused, 1, 'the offer was sent once');
    assert.equal(await p.evaluate(() => window.__guacr.transport), 'WebSocket');
    assert.match(await p.evaluate(() => window.__guacr.fallbackReason || ''), /busy/);
    await settle(p);
    await typeLine(p, 'echo after-signalling-refused');
    await settle(p);
    assert.match(await selectAllText(p), /after-signalling-refused\s*\n\s*after-signalling-refused/);
    await p.getByRole('button', { name: 'Open menu' }).click();
    await p.locator('#disconnect').click();

    // 2. The server says WebRTC is off: no offer is made at all.
    const o = await page('webrtc-disabled');
    await o.route(/\/tunnel\/webrtc$/, (r) => (r.request().method() === 'GET'
      ? r.fulfill({ status: 200, contentType: 'application/json', body: JSON.stringify({ enabled: false, video: false, ice_servers: [] }) })
      : r.continue()));
    await o.goto(`${g.base}/#/client/${encodeURIComponent(ssh.id)}`);
    await waitConnected(o, 30000);
    assert.equal(await o.evaluate(() => window.__guacr.transport), 'WebSocket');
    assert.match(await o.evaluate(() => window.__guacr.fallbackReason || ''), /turned off/);
    assert.deepEqual(o.signalling.map((x) => x.method), ['GET'], 'no offer was POSTed');
    await o.getByRole('button', { name: 'Open menu' }).click();
    await o.locator('#disconnect').click();

    // 3. The answer is real but has no usable candidates: the channel never opens, the
    // client gives up after 5 s and uses the WebSocket.
    const q = await page('channel-timeout');
    await q.route(/\/tunnel\/webrtc$/, async (r) => {
      if (r.request().method() !== 'POST') return r.continue();
      const res = await r.fetch();
      const body = await res.json();
      if (typeof body.answer === 'string') body.answer = body.answer.split(/\r?\n/).filter((l) => !/^a=candidate:/.test(l)).join('\r\n');
      return r.fulfill({ status: res.status(), contentType: 'application/json', body: JSON.stringify(body) });
    });
    const t0 = Date.now();
    await q.goto(`${g.base}/#/client/${encodeURIComponent(ssh.id)}`);
    await waitConnected(q, 40000);
    assert.equal(await q.evaluate(() => window.__guacr.transport), 'WebSocket');
    assert.match(await q.evaluate(() => window.__guacr.fallbackReason || ''), /did not open within 5 s/);
    assert.ok(Date.now() - t0 >= 5000, 'the fallback waited for the open timeout');
    await q.getByRole('button', { name: 'Open menu' }).click();
    await q.locator('#disconnect').click();
  });

  it('a permission refusal over WebRTC is shown and not retried over WebSocket', async () => {
    const p = await newPage(browser, 'refused');
    p.testName = 'refused';
    pages.push(p);
    let sockets = 0;
    p.on('websocket', () => { sockets++; });
    await loginUi(p, g.base, bob.username, bob.password);
    await p.getByRole('heading', { name: 'Your connections' }).waitFor();
    await p.goto(`${g.base}/#/client/${encodeURIComponent(vnc.id)}`);
    await p.locator('#status-title').filter({ hasText: 'Connection refused' }).waitFor({ timeout: 20000 });
    assert.match(await p.locator('#status-message').textContent(), /do not have access.*\(forbidden, 771\)/);
    await p.waitForTimeout(1500);
    assert.equal(sockets, 0, 'no WebSocket retry after the refusal');
    assert.equal(await p.locator('#status-title').textContent(), 'Connection refused', 'no automatic reconnect');
  });

  it('no page raised a script error', () => {
    const errors = pages.flatMap((p) => p.errors).filter((e) => !/Failed to load resource/.test(e));
    assert.deepEqual(errors, []);
  });
});
