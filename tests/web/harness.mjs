// Test harness for the web client's end-to-end tests: starts the real guacr binary
// (web listener + daemon) with a fresh database, creates the admin with guacr's CLI,
// and drives Debian's Chromium with playwright-core.
//
// Environment:
//   GUACR_BIN              guacr binary (default $CARGO_TARGET_DIR/debug/guacr)
//   GUACR_WEB_TEST_DB_URL  database URL (default: a new SQLite file in the temp dir);
//                          scripts/web-test.sh passes a fresh PostgreSQL database for the 2nd run
//   GUACR_PEERS_ENV        peers' env file (default /var/tmp/guacr-peers/env)
//   GUACR_WEB_ARTIFACTS    screenshots and logs (default /tmp/guacr-web-artifacts)
//   GUACR_CHROMIUM         browser (default /usr/bin/chromium)
import { spawn, spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { OidcProvider } from './oidc-provider.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
export const ROOT = path.resolve(here, '../..');
export const ARTIFACTS = process.env.GUACR_WEB_ARTIFACTS || '/tmp/guacr-web-artifacts';
fs.mkdirSync(ARTIFACTS, { recursive: true });

export const CHROMIUM = process.env.GUACR_CHROMIUM || '/usr/bin/chromium';
export const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic',
  '--no-first-run', '--disable-background-networking', '--disable-component-update',
  '--disable-sync', '--disable-dev-shm-usage'];

export function fail(msg) { throw new Error(msg); }

/** The test peers' variables (export K=V lines written by scripts/test-peers.sh start). */
export function peers() {
  const file = process.env.GUACR_PEERS_ENV || '/var/tmp/guacr-peers/env';
  if (!fs.existsSync(file)) fail(`test peers are not running: ${file} is missing (run scripts/test-peers.sh install && scripts/test-peers.sh start)`);
  const r = spawnSync('bash', ['-c', 'set -a; . "$0"; env -0', file], { encoding: 'utf8' });
  if (r.status !== 0) fail(`cannot read ${file}: ${r.stderr}`);
  const env = {};
  for (const kv of r.stdout.split('\0')) {
    const i = kv.indexOf('=');
    if (i > 0 && kv.startsWith('GUACR_TEST_')) env[kv.slice(0, i)] = kv.slice(i + 1);
  }
  for (const k of ['GUACR_TEST_HOST', 'GUACR_TEST_SSH_PORT', 'GUACR_TEST_PW_USER', 'GUACR_TEST_PW_PASSWORD']) {
    if (!env[k]) fail(`${k} missing from ${file} (scripts/test-peers.sh start)`);
  }
  return env;
}

export async function sshReachable(host, port) {
  return new Promise((resolve) => {
    const s = net.connect(Number(port), host);
    s.setTimeout(2000);
    s.once('data', (d) => { s.destroy(); resolve(d.toString().startsWith('SSH-')); });
    s.once('error', () => resolve(false));
    s.once('timeout', () => { s.destroy(); resolve(false); });
  });
}

const handedOut = new Set();
async function freePort() {
  // The kernel may hand the same ephemeral port out twice in a row once it is closed:
  // never give one port to two listeners of this process.
  for (;;) {
    const port = await new Promise((resolve, reject) => {
      const s = net.createServer();
      s.listen(0, '127.0.0.1', () => { const { port: p } = s.address(); s.close(() => resolve(p)); });
      s.on('error', reject);
    });
    if (!handedOut.has(port)) { handedOut.add(port); return port; }
  }
}

export function guacrBin() {
  const bin = process.env.GUACR_BIN || path.join(process.env.CARGO_TARGET_DIR || '/var/cache/guacr-target', 'debug/guacr');
  if (!fs.existsSync(bin)) fail(`guacr binary not found at ${bin} (cargo build -p guacr, or set GUACR_BIN)`);
  return bin;
}

function run(bin, args, opts = {}) {
  const r = spawnSync(bin, args, { encoding: 'utf8', timeout: 60000, ...opts });
  if (r.error) fail(`${path.basename(bin)} ${args.join(' ')}: ${r.error.message}`);
  if (r.status !== 0) fail(`${path.basename(bin)} ${args.join(' ')} exited ${r.status}: ${r.stderr || r.stdout}`);
  return r.stdout;
}

/** A running guacr with its web listener, a fresh database and an admin account. */
export class Guacr {
  static async start() {
    const g = new Guacr();
    await g.#start();
    return g;
  }

  async #start() {
    if (process.env.GUACR_WEB_TEST_URL) {
      // An already running guacr (debugging only; scripts/web-test.sh always starts its own).
      this.base = process.env.GUACR_WEB_TEST_URL.replace(/\/$/, '');
      const [username, password] = (process.env.GUACR_WEB_TEST_ADMIN || '').split(':');
      this.admin = { username, password };
      this.external = true;
      this.recordings = process.env.GUACR_WEB_TEST_RECORDINGS || '/tmp';
      this.tokenSecret = process.env.GUACR_WEB_TEST_TOKEN_SECRET || 'unknown';
      return;
    }
    this.bin = guacrBin();
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'guacr-web-test-'));
    this.webPort = await freePort();
    this.daemonPort = await freePort();
    this.adminPort = await freePort();
    this.base = `http://127.0.0.1:${this.webPort}`;
    this.dbUrl = process.env.GUACR_WEB_TEST_DB_URL || `sqlite://${path.join(this.dir, 'guacr.db')}?mode=rwc`;
    this.tokenSecret = crypto.randomBytes(32).toString('hex');
    this.recordings = path.join(this.dir, 'recordings');
    fs.mkdirSync(this.recordings);
    const assets = path.join(ROOT, 'web/dist');
    if (!fs.existsSync(path.join(assets, 'index.html'))) fail(`web client not built: ${assets}/index.html missing (scripts/web-build.sh)`);
    this.oidc = await OidcProvider.start({ clientId: 'guacr-web-test', clientSecret: crypto.randomBytes(12).toString('hex') });
    this.config = path.join(this.dir, 'guacr.toml');
    fs.writeFileSync(this.config, [
      '[server]', 'bind_host = "127.0.0.1"', `bind_port = ${this.daemonPort}`,
      '[daemon]', 'log_level = "info"',
      '[admin]', `bind = "127.0.0.1:${this.adminPort}"`,
      '[web]', 'enabled = true', `bind = "127.0.0.1:${this.webPort}"`, `assets = ${JSON.stringify(assets)}`,
      `token_secret = ${JSON.stringify(this.tokenSecret)}`,
      `recordings_dir = ${JSON.stringify(this.recordings)}`,
      '[database]', `url = ${JSON.stringify(this.dbUrl)}`,
      '[[web.oidc]]', 'id = "testidp"', 'label = "Sign in with Test IdP"', `issuer = ${JSON.stringify(this.oidc.issuer)}`,
      `client_id = ${JSON.stringify(this.oidc.clientId)}`, `client_secret = ${JSON.stringify(this.oidc.clientSecret)}`,
      '',
    ].join('\n'));
    // Everything of this instance stays in its temp dir; the secret key is per run.
    this.env = { ...process.env, GUACR_DATA_DIR: this.dir, GUACR_SECRET_KEY: crypto.randomBytes(32).toString('hex') };
    // Both the config file and the environment name the database (guacr's CLI and
    // daemon both honour GUACR_DATABASE_URL).
    this.env.GUACR_DATABASE_URL = this.dbUrl;
    // The same token secret as [web] token_secret, for `guacr token create`.
    this.env.GUACR_TOKEN_SECRET = this.tokenSecret;
    this.admin = { username: 'admin', password: `Adm-${crypto.randomBytes(9).toString('base64url')}` };
    this.cli(['user', 'add', this.admin.username, '--admin', '--password-stdin'], { input: `${this.admin.password}\n` });
    this.log = fs.openSync(path.join(ARTIFACTS, `guacr-${process.pid}.log`), 'w');
    this.proc = spawn(this.bin, ['-f', '-c', this.config], { env: this.env, stdio: ['ignore', this.log, this.log] });
    this.exited = null;
    this.proc.on('exit', (code, sig) => { this.exited = `exited ${code ?? sig}`; });
    const deadline = Date.now() + 30000;
    for (;;) {
      if (this.exited) fail(`guacr ${this.exited} at start; log: ${path.join(ARTIFACTS, `guacr-${process.pid}.log`)}`);
      try {
        const r = await fetch(`${this.base}/api/auth/providers`);
        if (r.ok) break;
      } catch { /* not yet */ }
      if (Date.now() > deadline) fail(`guacr web listener ${this.base} did not answer within 30 s`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** Runs a guacr subcommand against this instance's configuration. */
  cli(args, opts = {}) {
    return run(this.bin, ['-c', this.config, ...args], { env: this.env, ...opts });
  }

  /** An HS256 JWT signed with this instance's token secret (what another app would make). */
  signToken(claims) {
    const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
    const data = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64(claims)}`;
    const sig = crypto.createHmac('sha256', this.tokenSecret).update(data).digest('base64url');
    return `${data}.${sig}`;
  }

  async stop() {
    if (this.external) return;
    if (this.proc && !this.exited) {
      this.proc.kill('SIGTERM');
      const t = setTimeout(() => this.proc.kill('SIGKILL'), 5000);
      await new Promise((r) => this.proc.once('exit', r));
      clearTimeout(t);
    }
    if (this.log) fs.closeSync(this.log);
    await this.oidc?.stop();
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

/** JSON API client with cookie + CSRF, for test setup (the UI itself is what is tested). */
export class ApiClient {
  constructor(base) { this.base = base; this.cookie = ''; this.csrf = ''; }

  async login(username, password) {
    const r = await this.call('POST', '/api/login', { username, password });
    this.csrf = r.csrf;
    return r;
  }

  async call(method, p, body, { expect } = {}) {
    const headers = { Accept: 'application/json' };
    if (this.cookie) headers.Cookie = this.cookie;
    if (this.csrf) headers['X-CSRF-Token'] = this.csrf;
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const res = await fetch(this.base + p, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), redirect: 'manual' });
    const set = res.headers.getSetCookie?.() ?? [];
    for (const c of set) {
      const m = /^guacr_session=([^;]*)/.exec(c);
      if (m) this.cookie = `guacr_session=${m[1]}`;
    }
    const text = await res.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch { data = text; }
    if (expect !== undefined ? res.status !== expect : !res.ok) {
      fail(`${method} ${p} answered ${res.status}: ${text.slice(0, 300)}`);
    }
    return data;
  }
}

// ------------------------------------------------------------------ browser helpers

export async function launchBrowser() {
  if (!fs.existsSync(CHROMIUM)) fail(`${CHROMIUM} missing (apt-get install chromium, or scripts/test-peers.sh install)`);
  const { chromium } = await import('playwright-core');
  return chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, headless: true });
}

/** A page that records console errors and uncaught exceptions (tests assert there are none). */
export async function newPage(browser, name, opts = {}) {
  const context = await browser.newContext({ viewport: { width: 1024, height: 700 }, ...opts });
  const page = await context.newPage();
  page.errors = [];
  page.on('pageerror', (e) => page.errors.push(`${name}: ${e.message}`));
  page.on('console', (m) => { if (m.type() === 'error') page.errors.push(`${name} console: ${m.text()}`); });
  page.on('dialog', (d) => void d.accept());
  // Every state-changing API call the UI makes must carry the CSRF token.
  page.apiWrites = [];
  page.on('request', (r) => {
    const u = new URL(r.url());
    if (u.pathname.startsWith('/api/') && r.method() !== 'GET' && u.pathname !== '/api/login') {
      page.apiWrites.push({ method: r.method(), path: u.pathname, csrf: Boolean(r.headers()['x-csrf-token']) });
    }
  });
  return page;
}

export async function shot(page, name) {
  const file = path.join(ARTIFACTS, `${name}.png`);
  await page.screenshot({ path: file });
  return file;
}

export async function loginUi(page, base, username, password) {
  await page.goto(`${base}/#/login`);
  await page.getByLabel('Username').fill(username);
  await page.getByLabel('Password', { exact: true }).fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
}

/** Waits until the client view is connected and the display shows something. */
export async function waitConnected(page, timeout = 20000) {
  await page.waitForFunction(() => {
    const g = window.__guacr;
    return g && g.state === 3 && g.display && g.display.getWidth() > 0;
  }, null, { timeout });
}

/** Takes a snapshot of the remote display's pixels inside the page under `name`. */
export async function snap(page, name) {
  await page.evaluate((n) => {
    const d = window.__guacr.display;
    const c = d.flatten();
    const img = c.getContext('2d').getImageData(0, 0, c.width, c.height);
    window.__snaps = window.__snaps || {};
    window.__snaps[n] = img;
  }, name);
}

/** Pixels that differ between two snapshots, and the rows where they are. */
export async function diff(page, a, b) {
  return page.evaluate(([x, y]) => {
    const A = window.__snaps[x];
    const B = window.__snaps[y];
    if (A.width !== B.width || A.height !== B.height) return { changed: -1, minY: 0, maxY: B.height, sizeChanged: true };
    let changed = 0; let minY = Infinity; let maxY = -1;
    for (let i = 0; i < A.data.length; i += 4) {
      if (A.data[i] !== B.data[i] || A.data[i + 1] !== B.data[i + 1] || A.data[i + 2] !== B.data[i + 2]) {
        changed++;
        const yy = Math.floor(i / 4 / A.width);
        if (yy < minY) minY = yy;
        if (yy > maxY) maxY = yy;
      }
    }
    return { changed, minY, maxY };
  }, [a, b]);
}

/** Distinct colours on the display (a blank canvas has one). */
export async function colours(page) {
  return page.evaluate(() => {
    const c = window.__guacr.display.flatten();
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    const set = new Set();
    for (let i = 0; i < d.length; i += 16) set.add((d[i] << 16) | (d[i + 1] << 8) | d[i + 2]);
    return set.size;
  });
}

/** Waits until the display stops changing for `quietMs`. */
export async function settle(page, quietMs = 600, timeout = 10000) {
  const end = Date.now() + timeout;
  let n = 0;
  await snap(page, '__settle0');
  for (;;) {
    await page.waitForTimeout(quietMs);
    await snap(page, `__settle${++n}`);
    const d = await diff(page, `__settle${n - 1}`, `__settle${n}`);
    if (d.changed === 0) return;
    if (Date.now() > end) return;
  }
}

/**
 * Selects the whole terminal with the mouse (drag from the top-left to the bottom-right
 * corner of the display); guacr's terminal hands the selection to the clipboard, which
 * the client puts in the menu's clipboard panel. Returns that text.
 */
export async function selectAllText(page) {
  const before = await page.evaluate(() => window.__guacr.clipboard);
  const box = await page.locator('#display-host .display').boundingBox();
  if (!box) fail('no display element');
  await page.evaluate(() => { window.__guacr.clipboard = ''; });
  await page.mouse.move(box.x + 2, box.y + 2);
  await page.mouse.down();
  await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2, { steps: 5 });
  await page.mouse.move(box.x + box.width - 2, box.y + box.height - 2, { steps: 5 });
  await page.mouse.up();
  try {
    await page.waitForFunction(() => window.__guacr.clipboard !== '', null, { timeout: 5000 });
  } catch {
    fail(`no clipboard text arrived after selecting the terminal (before: ${JSON.stringify(before)})`);
  }
  return page.evaluate(() => window.__guacr.clipboard);
}

export async function typeLine(page, text) {
  await page.locator('#display-host').focus();
  await page.keyboard.type(text, { delay: 15 });
  await page.keyboard.press('Enter');
}

/** The TOTP code (RFC 6238: SHA-1, 6 digits, 30 s) of a base32 secret, `steps` periods from now. */
export function totpCode(secretBase32, steps = 0) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = '';
  for (const c of secretBase32.replace(/=+$/, '').toUpperCase()) {
    const v = alphabet.indexOf(c);
    if (v < 0) fail(`not base32: ${secretBase32}`);
    bits += v.toString(2).padStart(5, '0');
  }
  const key = Buffer.from((bits.match(/.{8}/g) || []).map((b) => parseInt(b, 2)));
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(Math.floor(Date.now() / 1000 / 30) + steps));
  const mac = crypto.createHmac('sha1', key).update(counter).digest();
  const o = mac[mac.length - 1] & 0xf;
  const n = ((mac[o] & 0x7f) << 24) | (mac[o + 1] << 16) | (mac[o + 2] << 8) | mac[o + 3];
  return String(n % 1_000_000).padStart(6, '0');
}
