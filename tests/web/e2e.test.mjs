// End-to-end tests of the web client: the real guacr binary (web listener, store, tunnels,
// SSH handler) against the real OpenSSH test peer, driven through Debian's Chromium.
// Run: scripts/web-test.sh (builds, starts the peers, runs this on SQLite and PostgreSQL),
// or: node --test tests/web/ with guacr built and the peers started.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  ApiClient, colours, diff, Guacr, launchBrowser, loginUi, newPage, peers, selectAllText,
  settle, shot, snap, sshReachable, totpCode, typeLine, waitConnected,
} from './harness.mjs';

const EVIL_NAME = `<img src=x onerror="window.__pwned=1">SSH '; DROP TABLE users;--`;
const EVIL_USER = `<script>window.__pwned=1</script>' OR '1'='1`;

describe('guacr web client', () => {
  let g; let browser; let adminApi; let env;
  let conn; // the SSH connection (made by the admin through the API)
  const user = { username: 'alice', password: 'alice-Secret-42' };
  const pages = [];

  before(async () => {
    env = peers();
    if (!(await sshReachable(env.GUACR_TEST_HOST, env.GUACR_TEST_SSH_PORT))) {
      throw new Error(`OpenSSH test peer not reachable on ${env.GUACR_TEST_HOST}:${env.GUACR_TEST_SSH_PORT} (scripts/test-peers.sh start)`);
    }
    g = await Guacr.start();
    adminApi = new ApiClient(g.base);
    await adminApi.login(g.admin.username, g.admin.password);
    const alice = await adminApi.call('POST', '/api/admin/users', { id: '', username: user.username, display_name: 'Alice Example', password: user.password, admin: false });
    conn = await adminApi.call('POST', '/api/admin/connections', {
      name: EVIL_NAME, protocol: 'ssh', group: 'Servers/Linux', description: 'loopback OpenSSH',
      params: {
        hostname: env.GUACR_TEST_HOST, port: String(env.GUACR_TEST_SSH_PORT),
        username: env.GUACR_TEST_PW_USER, password: env.GUACR_TEST_PW_PASSWORD,
        ...(env.GUACR_TEST_SSH_HOSTKEY_PUB ? { 'host-key': env.GUACR_TEST_SSH_HOSTKEY_PUB } : {}),
        'recording-path': g.recordings, 'recording-name': 'web-${GUAC_USERNAME}', 'create-recording-path': 'true', 'recording-include-keys': 'true',
      },
    }, { expect: 201 });
    await adminApi.call('PUT', `/api/admin/connections/${encodeURIComponent(conn.id)}/permissions`, { users: [alice.id], groups: [] });
    browser = await launchBrowser();
  });

  after(async () => {
    // Final state of every page, for humans reading a failure.
    for (const p of pages) await shot(p, `final-${p.testName}`).catch(() => {});
    for (const p of pages) await p.context().close().catch(() => {});
    await browser?.close().catch(() => {});
    await g?.stop();
  });

  async function page(name, opts) {
    const p = await newPage(browser, name, opts);
    p.testName = name;
    pages.push(p);
    return p;
  }

  let userPage;
  let adminPage;

  it('a wrong password shows a clear message', async () => {
    const p = await page('wrong-password');
    await loginUi(p, g.base, EVIL_USER, 'not-the-password');
    const alert = p.locator('#login-error');
    await alert.waitFor({ state: 'visible' });
    assert.match(await alert.textContent(), /wrong user ?name or password/i);
    assert.equal(await p.evaluate(() => window.__pwned), undefined);
    await shot(p, 'login-wrong-password');
    // An OIDC callback error comes back as #/login?error=…: shown as text.
    await p.goto(`${g.base}/#/login?error=${encodeURIComponent('<img src=x onerror="window.__pwned=1">Provider said no')}`);
    await p.locator('#login-error').filter({ hasText: 'Provider said no' }).waitFor();
    assert.match(await p.locator('#login-error').textContent(), /^<img src=x/);
    assert.equal(await p.locator('#login-error img').count(), 0);
    assert.deepEqual(p.errors.filter((e) => !/401/.test(e)), []);
  });

  it('OIDC: the provider button signs a user in (code + PKCE); a refusal is shown clearly', async () => {
    const p = await page('oidc');
    await p.goto(`${g.base}/#/login`);
    const btn = p.getByRole('link', { name: 'Sign in with Test IdP' });
    await btn.waitFor();
    g.oidc.denyNext = true;
    await btn.click();
    const alert = p.locator('#login-error');
    await alert.filter({ hasText: 'declined' }).waitFor();
    assert.match(await alert.textContent(), /refused.*<b>declined<\/b>/, 'the provider\'s refusal, as text');
    assert.equal(await alert.locator('b').count(), 0);
    await shot(p, 'oidc-refused');
    await p.getByRole('link', { name: 'Sign in with Test IdP' }).click();
    await p.getByRole('heading', { name: 'Your connections' }).waitFor();
    assert.ok(await p.getByText('Olivia OIDC').isVisible(), 'signed in as the provider\'s user');
    assert.ok(g.oidc.tokenRequests >= 1, 'the gateway redeemed the code at the token endpoint');
    await shot(p, 'oidc-signed-in');
  });

  it('a user logs in and sees the connection grouped, with its HTML-looking name as text', async () => {
    userPage = await page('user');
    await loginUi(userPage, g.base, user.username, user.password);
    const card = userPage.locator(`a.conn-card[data-connection-id="${conn.id}"]`);
    await card.waitFor();
    assert.equal(await card.locator('.conn-name').textContent(), EVIL_NAME);
    assert.equal(await userPage.locator('.conn-groups img').count(), 0, 'no <img> injected');
    assert.equal(await userPage.locator('.group-title').first().textContent(), 'Servers / Linux');
    // Search filters.
    await userPage.getByLabel('Search connections').fill('no-such-thing');
    await userPage.getByText('No connection matches').waitFor();
    await userPage.getByLabel('Search connections').fill('drop table');
    await card.waitFor();
    await shot(userPage, 'home');
    assert.equal(await userPage.evaluate(() => window.__pwned), undefined);
  });

  it('opens the SSH connection, types echo hello-from-browser and sees it on the canvas', async () => {
    await userPage.locator(`a.conn-card[data-connection-id="${conn.id}"]`).click();
    await waitConnected(userPage);
    // WebRTC's data channel when the server offers it (tests/web/webrtc.test.mjs covers it), else WebSocket.
    const rtc = await fetch(`${g.base}/tunnel/webrtc`).then((r) => (r.ok ? r.json() : null)).catch(() => null);
    assert.equal(await userPage.evaluate(() => window.__guacr.transport), rtc?.enabled ? 'WebRTC (data channel)' : 'WebSocket');
    await settle(userPage);
    assert.ok(await colours(userPage) > 1, 'the prompt is drawn');
    await snap(userPage, 'before');
    await typeLine(userPage, 'echo hello-from-browser');
    await settle(userPage);
    await snap(userPage, 'after');
    const d = await diff(userPage, 'before', 'after');
    assert.ok(d.changed > 200, `typing changed the picture (${d.changed} px)`);
    // The output line lies below the command line: the changed rows span two text rows.
    assert.ok(d.maxY - d.minY >= 20, `command and output rows changed (rows ${d.minY}..${d.maxY})`);
    await shot(userPage, 'ssh-hello-from-browser');
    // Read the text back through the terminal's own selection -> clipboard path.
    const text = await selectAllText(userPage);
    const hits = text.split('hello-from-browser').length - 1;
    assert.ok(hits >= 2, `command and its output on screen: ${JSON.stringify(text.slice(-300))}`);
  });

  it('clipboard round trip: the panel pastes into the session and a selection comes back', async () => {
    await userPage.getByRole('button', { name: 'Open menu' }).click();
    const area = userPage.locator('#clipboard-text');
    await area.fill('echo clip-$((6*7))-ok');
    await userPage.locator('#clipboard-send').click();
    await userPage.getByRole('button', { name: 'Close menu' }).click();
    await userPage.keyboard.press('Enter');
    await settle(userPage);
    const text = await selectAllText(userPage);
    assert.match(text, /clip-42-ok/, 'the shell received the pasted text and ran it');
    await userPage.getByRole('button', { name: 'Open menu' }).click();
    assert.match(await area.inputValue(), /clip-42-ok/, 'the selection reached the clipboard panel');
    await userPage.getByRole('button', { name: 'Close menu' }).click();
  });

  it('the on-screen keyboard field (touch devices) types into the session', async () => {
    await userPage.getByRole('button', { name: 'Open menu' }).click();
    await userPage.locator('#show-keyboard').click();
    assert.equal(await userPage.evaluate(() => document.activeElement?.id), 'text-input');
    await userPage.keyboard.type('echo typed-$((3+4))-touch', { delay: 15 });
    await userPage.keyboard.press('Enter');
    await settle(userPage);
    const text = await selectAllText(userPage);
    assert.match(text, /typed-7-touch/, 'the shell ran what was typed in the field');
  });

  let viewer;
  it('a read-only share link opens in a second browser context and cannot type', async () => {
    await userPage.getByRole('button', { name: 'Open menu' }).click();
    await userPage.locator('#share-ro').click();
    const url = await userPage.locator('#share-url-ro').inputValue();
    assert.match(url, /#\/share\//);
    await userPage.getByRole('button', { name: 'Close menu' }).click();
    viewer = await page('viewer');
    await viewer.goto(url.startsWith('http') ? url : g.base + url);
    await waitConnected(viewer);
    await settle(viewer);
    assert.ok(await colours(viewer) > 1, 'the viewer sees the terminal');
    await shot(viewer, 'share-read-only');
    await settle(userPage);
    await snap(userPage, 'owner-before');
    await typeLine(viewer, 'echo typed-by-viewer');
    await userPage.waitForTimeout(1500);
    await snap(userPage, 'owner-after');
    const d = await diff(userPage, 'owner-before', 'owner-after');
    assert.equal(d.changed, 0, 'keys from a read-only viewer do not reach the session');
    const text = await selectAllText(userPage);
    assert.ok(!text.includes('typed-by-viewer'), 'nothing typed by the viewer is on screen');
  });

  it('falls back to the HTTP tunnel when WebSockets are blocked', async () => {
    const p = await page('http-tunnel');
    // A proxy that refuses WebSockets: every /tunnel/websocket upgrade is closed at once.
    let blocked = 0;
    await p.routeWebSocket(/\/tunnel\/websocket/, (ws) => { blocked++; void ws.close({ code: 1011, reason: 'no websockets here' }); });
    // …and no WebRTC signalling either.
    await p.route(/\/tunnel\/webrtc/, (r) => r.abort());
    await loginUi(p, g.base, user.username, user.password);
    await p.locator('a.conn-card').first().waitFor();
    await p.goto(`${g.base}/#/client/${encodeURIComponent(conn.id)}`);
    await waitConnected(p);
    assert.equal(await p.evaluate(() => window.__guacr.transport), 'HTTP');
    await settle(p);
    await snap(p, 'a');
    await typeLine(p, 'echo over-http');
    await settle(p);
    await snap(p, 'b');
    assert.ok((await diff(p, 'a', 'b')).changed > 100, 'typing over the HTTP tunnel changes the picture');
    assert.ok(blocked >= 1, 'the WebSocket was tried first');
    await p.getByRole('button', { name: 'Open menu' }).click();
    assert.match(await p.locator('#info-transport').textContent(), /HTTP/);
    await p.locator('#disconnect').click();
    await p.locator('#status-title').filter({ hasText: 'Disconnected' }).waitFor();
  });

  it('a dropped link shows why and reconnects by itself', async () => {
    const p = await page('link-drop');
    await loginUi(p, g.base, user.username, user.password);
    await p.locator('a.conn-card').first().waitFor();
    // Offline emulation cuts HTTP and WebSockets, not WebRTC's UDP: this test uses the
    // WebSocket (webrtc.test.mjs drops a peer connection instead).
    await p.goto(`${g.base}/#/client/${encodeURIComponent(conn.id)}?transport=websocket`);
    await waitConnected(p);
    await p.context().setOffline(true);
    await p.locator('#status-title').filter({ hasText: 'Connection lost' }).waitFor({ timeout: 40000 });
    assert.match(await p.locator('#status-message').textContent(), /Reconnecting in \d+ s/);
    assert.equal(await p.locator('#reconnect').count(), 1, 'a Reconnect button is offered');
    await shot(p, 'link-drop');
    await p.context().setOffline(false);
    await waitConnected(p, 40000);
    await p.locator('#disconnect').evaluate((b) => b.click());
  });

  it('an admin kills the session and the user sees why', async () => {
    const admin = await page('admin');
    adminPage = admin;
    await loginUi(admin, g.base, g.admin.username, g.admin.password);
    await admin.locator('a.conn-card').first().waitFor();
    await admin.goto(`${g.base}/#/admin/sessions`);
    const row = admin.locator('#sessions-table tbody tr', { hasText: user.username }).first();
    await row.waitFor();
    await shot(admin, 'admin-sessions');
    // An admin can watch the live session (join read-only) from the list.
    const sid = await row.getAttribute('data-session-id');
    const watch = await admin.context().newPage();
    watch.errors = [];
    watch.testName = 'admin-watch';
    pages.push(watch);
    await watch.goto(`${g.base}/#/client?join=${encodeURIComponent(sid)}&read_only=1`);
    await waitConnected(watch);
    await settle(watch);
    assert.ok(await colours(watch) > 1, 'the watching admin sees the terminal');
    await row.locator('.kill-reason').fill('maintenance <b>window</b>');
    await row.locator('button.kill').click();
    const msg = userPage.locator('#status-message');
    await msg.waitFor({ state: 'visible' });
    await userPage.waitForFunction(() => /administrator/i.test(document.querySelector('#status-message')?.textContent || ''), null, { timeout: 10000 });
    const t = await msg.textContent();
    assert.match(t, /Session closed by an administrator/);
    assert.match(await userPage.locator('#status-title').textContent(), /Session closed/);
    await shot(userPage, 'session-killed');
    // The viewer of that session is told as well.
    await viewer.waitForFunction(() => window.__guacr && window.__guacr.state === 5, null, { timeout: 10000 });
  });

  it('the wrong password is in the audit log, shown escaped', async () => {
    const admin = adminPage;
    await admin.goto(`${g.base}/#/admin/audit`);
    await admin.locator('#audit-kind').selectOption('login.failure');
    await admin.getByRole('button', { name: 'Apply' }).click();
    const row = admin.locator('#audit-table tbody tr[data-kind="login.failure"]', { hasText: "OR '1'='1" }).first();
    await row.waitFor();
    assert.ok((await row.textContent()).includes(EVIL_USER), 'the attempted username is shown literally');
    assert.equal(await admin.evaluate(() => window.__pwned), undefined);
    await shot(admin, 'audit-login-failure');
  });

  it('a signed token from guacr token create opens its connection without a login', async () => {
    const out = g.cli(['token', 'create', '--connection', String(conn.id), '--ttl', '300']);
    const token = out.trim().split(/\s+/).find((w) => /^[\w-]+\.[\w-]+\.[\w-]+$/.test(w));
    assert.ok(token, `guacr token create printed a JWT: ${out}`);
    const p = await page('token');
    await p.goto(`${g.base}/#/client?token=${encodeURIComponent(token)}`);
    await waitConnected(p);
    await settle(p);
    assert.ok(await colours(p) > 1);
    assert.equal(await p.locator('#share-ro').count(), 0, 'no share buttons for an anonymous token session');
    await shot(p, 'token-connected');
  });

  it('expired and forged tokens are refused with a clear message', async () => {
    const now = Math.floor(Date.now() / 1000);
    // Signed with the gateway's secret, like another application would.
    const good = g.signToken({ exp: now + 300, iat: now, sub: 'web-test', connection: String(conn.id) });
    const expired = g.signToken({ exp: now - 3600, iat: now - 7200, sub: 'web-test', connection: String(conn.id) });
    const e = await page('token-expired');
    await e.goto(`${g.base}/#/client?token=${encodeURIComponent(expired)}`);
    await e.locator('#status-message').filter({ hasText: 'expired' }).waitFor({ timeout: 15000 });
    assert.match(await e.locator('#status-message').textContent(), /The link has expired/);
    assert.match(await e.locator('#status-title').textContent(), /refused/i);
    assert.ok(!(await e.locator('#status-message').textContent()).includes('Reconnecting'), 'no automatic retry of a refusal');
    await shot(e, 'token-expired');

    const [h, b] = good.split('.');
    const forged = `${h}.${b}.${Buffer.from('not the signature at all, no').toString('base64url')}`;
    const f = await page('token-forged');
    await f.goto(`${g.base}/#/client?token=${encodeURIComponent(forged)}`);
    await f.locator('#status-message').filter({ hasText: 'not valid' }).waitFor({ timeout: 15000 });
    assert.match(await f.locator('#status-message').textContent(), /The link is not valid/);
    await shot(f, 'token-forged');

    // The same claims with the right signature work: the refusal was about the signature.
    const ok = await page('token-selfsigned');
    await ok.goto(`${g.base}/#/client?token=${encodeURIComponent(good)}`);
    await waitConnected(ok);
    await ok.context().close();

    const admin = adminPage;
    await admin.goto(`${g.base}/#/admin/audit`);
    await admin.locator('#audit-kind').selectOption('token.refused');
    await admin.getByRole('button', { name: 'Apply' }).click();
    await admin.locator('#audit-table tbody tr[data-kind="token.refused"]').nth(1).waitFor();
  });

  it('the connection editor builds its form from the protocol schema and escapes names', async () => {
    const admin = adminPage;
    await admin.goto(`${g.base}/#/admin/connections/${encodeURIComponent(conn.id)}`);
    await admin.locator('#connection-form').waitFor();
    assert.equal(await admin.locator('#conn-name').inputValue(), EVIL_NAME);
    const sections = await admin.locator('details.param-section > summary').allTextContents();
    assert.ok(sections.includes('Network') && sections.includes('Authentication'), `sections from the ParamSpecs: ${sections}`);
    const hostname = admin.locator('[data-param="hostname"]');
    assert.equal(await hostname.inputValue(), env.GUACR_TEST_HOST);
    const pw = admin.locator('[data-param="password"]');
    assert.equal(await pw.getAttribute('type'), 'password', 'secret parameters are masked');
    assert.equal(await pw.inputValue(), '********', 'the stored secret never reaches the browser');
    await admin.locator('#conn-desc').fill('<b>edited</b>');
    await admin.locator('#conn-save').click();
    await admin.getByText('Connection saved.').waitFor();
    await admin.goto(`${g.base}/#/admin/connections`);
    const cell = admin.locator('#connections-table tbody tr', { hasText: 'DROP TABLE' }).first();
    await cell.waitFor();
    assert.ok((await cell.textContent()).includes('<b>edited</b>'));
    assert.equal(await admin.locator('#connections-table b').count(), 0);
    await shot(admin, 'admin-connections');
    // Permissions from the editor: take alice's access away, then give it back.
    await admin.goto(`${g.base}/#/admin/connections/${encodeURIComponent(conn.id)}`);
    const perm = admin.locator('#permissions-form').getByLabel('Alice Example (alice)');
    await perm.waitFor();
    assert.equal(await perm.isChecked(), true);
    await perm.uncheck();
    await admin.locator('#permissions-form').getByRole('button', { name: 'Save permissions' }).click();
    await admin.getByText('Permissions saved.').first().waitFor();
    await userPage.goto(`${g.base}/#/`);
    await userPage.getByText('No connections yet').waitFor();
    await userPage.goto(`${g.base}/#/client/${encodeURIComponent(conn.id)}`);
    await userPage.locator('#status-title').filter({ hasText: 'refused' }).waitFor({ timeout: 15000 });
    await shot(userPage, 'permission-refused');
    await perm.check();
    // Wait for this save itself (the toast of the previous save may still be showing).
    await Promise.all([
      admin.waitForResponse((r) => /\/permissions$/.test(new URL(r.url()).pathname) && r.request().method() === 'PUT' && r.ok()),
      admin.locator('#permissions-form').getByRole('button', { name: 'Save permissions' }).click(),
    ]);
    // The secret was kept: the user can still connect.
    await userPage.goto(`${g.base}/#/`);
    await userPage.locator(`a.conn-card[data-connection-id="${conn.id}"]`).click();
    await waitConnected(userPage);
    await userPage.locator('#display-host').focus();
    await userPage.keyboard.type('exit', { delay: 15 });
    await userPage.keyboard.press('Enter');
    await userPage.locator('#status-title').filter({ hasText: 'Disconnected' }).waitFor({ timeout: 15000 });
  });

  it('the player plays a recording and seeks', async () => {
    const admin = adminPage;
    const listed = await adminApi.call('GET', '/api/admin/recordings', undefined, { expect: undefined }).catch((e) => e);
    if (listed instanceof Error) {
      throw new Error(`GET /api/admin/recordings (docs/web-api.md) is not served: ${listed.message}`);
    }
    await admin.goto(`${g.base}/#/admin/recordings`);
    await admin.locator('#recordings-table tbody tr[data-recording]').first().waitFor({ timeout: 15000 });
    // The biggest recording is the long session of the first tests.
    const sizes = await admin.locator('#recordings-table tbody tr[data-recording]').evaluateAll((rows) => rows.map((r) => Number(r.getAttribute('data-size'))));
    const biggest = sizes.indexOf(Math.max(...sizes));
    await admin.locator('#recordings-table tbody tr[data-recording]').nth(biggest).getByRole('link', { name: 'Play' }).click();
    await admin.waitForFunction(() => window.__guacrPlayer?.loaded, null, { timeout: 20000 });
    const duration = await admin.evaluate(() => window.__guacrPlayer.duration);
    assert.ok(duration > 500, `the recording lasts (${duration} ms)`);
    // Typed text rebuilt from the recording's key events, each line a jump target.
    assert.match(await admin.locator('#player-typed').textContent(), /echo hello-from-browser/, 'the typed text lists what was typed');
    // The server's guaclog-style key log.
    await admin.locator('#tab-keylog').click();
    await admin.waitForFunction(() => (document.querySelector('#player-keys')?.textContent || '') !== 'Loading…');
    const keylog = await admin.locator('#player-keys').textContent();
    assert.ok(!/unavailable/.test(keylog) && /echo|hello/.test(keylog), `the key log is shown: ${keylog.slice(0, 200)}`);
    await admin.locator('#tab-typed').click();
    // Seek to the end and to the start: the picture differs.
    const seekTo = async (ms) => {
      await admin.locator('#player-seek').evaluate((el, v) => { el.value = String(v); el.dispatchEvent(new Event('input', { bubbles: true })); }, ms);
      // A seek into an idle stretch lands on the next frame: wait for the seek to finish.
      await admin.waitForFunction(() => !window.__guacrPlayer.seeking, null, { timeout: 15000 });
      const pos = await admin.evaluate(() => window.__guacrPlayer.position);
      assert.ok(pos >= ms - 1000 && pos <= duration, `seek to ${ms} ms landed at ${pos} ms`);
    };
    // The display draws on animation frames after a seek: read it once it stops changing.
    const picture = async () => {
      let prev = '';
      for (let i = 0; i < 20; i++) {
        await admin.waitForTimeout(250);
        const cur = await admin.evaluate(() => window.__guacrPlayer.display.flatten().toDataURL());
        if (cur === prev) return cur;
        prev = cur;
      }
      return prev;
    };
    await seekTo(duration);
    const end = await picture();
    await seekTo(0);
    const start = await picture();
    assert.notEqual(start, end, 'seeking changes the picture');
    await seekTo(Math.floor(duration / 2));
    // Play at 4x: the position advances.
    await admin.locator('#player-speed').selectOption('4');
    const p0 = await admin.evaluate(() => window.__guacrPlayer.position);
    await admin.locator('#player-play').click();
    await admin.waitForFunction((v) => window.__guacrPlayer.position > v + 300 || window.__guacrPlayer.position >= window.__guacrPlayer.duration, p0, { timeout: 10000 });
    await admin.locator('#player-play').click();
    assert.equal(await admin.evaluate(() => window.__guacrPlayer.playing), false);
    await shot(admin, 'player');
  });

  it('an admin manages groups and users in the UI; a disabled user cannot sign in', async () => {
    const admin = adminPage;
    await admin.goto(`${g.base}/#/admin/groups`);
    await admin.getByRole('button', { name: 'New group' }).click();
    await admin.locator('#group-name').fill('Ops <i>team</i>');
    await admin.getByRole('button', { name: 'Create group' }).click();
    const grow = admin.locator('#groups-table tbody tr', { hasText: 'Ops <i>team</i>' });
    await grow.waitFor();
    assert.equal(await admin.locator('#groups-table i').count(), 0);

    await admin.goto(`${g.base}/#/admin/users`);
    await admin.locator('#user-new').click();
    await admin.locator('#user-username').fill('bob');
    await admin.locator('#user-display').fill('Bob "<u>"');
    await admin.locator('#user-password').fill('bob-Secret-77');
    await admin.locator('#user-form').getByLabel('Ops <i>team</i>').check();
    await admin.getByRole('button', { name: 'Create user' }).click();
    const urow = admin.locator('#users-table tbody tr', { hasText: 'bob' });
    await urow.waitFor();
    assert.match(await urow.textContent(), /Bob "<u>"/);
    assert.match(await urow.textContent(), /Ops <i>team<\/i>/, 'group membership shown');
    assert.equal(await admin.locator('#users-table u').count(), 0);

    // bob can sign in…
    const b = await page('bob');
    await loginUi(b, g.base, 'bob', 'bob-Secret-77');
    await b.getByRole('heading', { name: 'Your connections' }).waitFor();
    // …until an admin disables him.
    await urow.getByRole('button', { name: 'Edit' }).click();
    await admin.locator('#user-disabled').check();
    await admin.getByRole('button', { name: 'Save' }).click();
    await admin.locator('#users-table tbody tr', { hasText: 'Disabled' }).waitFor();
    const b2 = await page('bob-disabled');
    await loginUi(b2, g.base, 'bob', 'bob-Secret-77');
    await b2.locator('#login-error').waitFor({ state: 'visible' });
    assert.ok((await b2.locator('#login-error').textContent()).length > 5, 'a clear refusal is shown');
    await shot(b2, 'login-disabled-user');
  });

  it('a password the admin set to be changed: the user must choose a new one before anything else', async () => {
    const admin = adminPage;
    await admin.goto(`${g.base}/#/admin/users`);
    await admin.locator('#user-new').click();
    await admin.locator('#user-username').fill('dave');
    await admin.locator('#user-password').fill('dave-First-11');
    await admin.locator('#user-must-change').check();
    await admin.getByRole('button', { name: 'Create user' }).click();
    await admin.locator('#users-table tbody tr', { hasText: 'dave' }).waitFor();

    const c = await page('dave');
    await loginUi(c, g.base, 'dave', 'dave-First-11');
    await c.locator('#password-change-required').waitFor();
    assert.match(c.url(), /#\/account/);
    // Nothing else opens first: the home page sends her back.
    await c.goto(`${g.base}/#/`);
    await c.locator('#password-change-required').waitFor();
    assert.match(c.url(), /#\/account/);
    // The API agrees (not just the UI).
    const status = await c.evaluate(async () => (await fetch('/api/connections')).status);
    assert.equal(status, 403);
    await c.getByLabel('Current password').fill('dave-First-11');
    await c.getByLabel('New password', { exact: true }).fill('dave-Own-22x');
    await c.getByLabel('Repeat the new password').fill('dave-Own-22x');
    await c.getByRole('button', { name: 'Change password' }).click();
    await c.getByRole('heading', { name: 'Your connections' }).waitFor();
    assert.equal(await c.evaluate(async () => (await fetch('/api/connections')).status), 200);
    await shot(c, 'password-changed');
  });

  it('two-factor: a user sets it up with the QR code, then signs in with a code; an admin resets it', async () => {
    await adminApi.call('POST', '/api/admin/users', { id: '', username: 'erin', display_name: 'Erin', password: 'erin-Secret-55', admin: false }, { expect: 201 });
    const e = await page('erin');
    await loginUi(e, g.base, 'erin', 'erin-Secret-55');
    await e.getByRole('heading', { name: 'Your connections' }).waitFor();
    await e.goto(`${g.base}/#/account`);
    await e.locator('#totp-password').fill('erin-Secret-55');
    await e.getByRole('button', { name: 'Set up two-factor' }).click();
    const qr = e.locator('#totp-qr');
    await qr.waitFor();
    assert.ok(await qr.evaluate((img) => img.complete && img.naturalWidth >= 200), 'the QR code image renders');
    const secret = (await e.locator('#totp-secret').textContent()).trim();
    assert.match(secret, /^[A-Z2-7]{32}$/);
    await shot(e, 'totp-setup');
    // A wrong code first: a clear message, nothing enabled.
    await e.getByLabel('Code from the app').fill(String((Number(totpCode(secret, -1)) + 1) % 1e6).padStart(6, '0'));
    await e.getByRole('button', { name: 'Turn on two-factor' }).click();
    await e.locator('#totp-confirm .alert').filter({ hasText: 'not right' }).waitFor();
    await e.getByLabel('Code from the app').fill(totpCode(secret, -1));
    await e.getByRole('button', { name: 'Turn on two-factor' }).click();
    await e.locator('#totp-status').filter({ hasText: 'Enabled' }).waitFor();

    // Signing in now asks for the code.
    const e2 = await page('erin-totp');
    await loginUi(e2, g.base, 'erin', 'erin-Secret-55');
    const code = e2.getByLabel('Authentication code');
    await code.waitFor();
    await code.fill(totpCode(secret, 1));
    await e2.getByRole('button', { name: 'Sign in' }).click();
    await e2.getByRole('heading', { name: 'Your connections' }).waitFor();

    // Lost phone: the admin resets it from the user editor; no code is asked any more.
    const admin = await page('erin-admin');
    await loginUi(admin, g.base, g.admin.username, g.admin.password);
    await admin.getByRole('heading', { name: 'Your connections' }).waitFor();
    await admin.goto(`${g.base}/#/admin/users`);
    await admin.locator('#users-table tbody tr', { hasText: 'erin' }).getByRole('button', { name: 'Edit' }).click();
    await admin.locator('#user-reset-totp').click();
    await admin.locator('#user-form').waitFor({ state: 'detached' });
    const e3 = await page('erin-reset');
    await loginUi(e3, g.base, 'erin', 'erin-Secret-55');
    await e3.getByRole('heading', { name: 'Your connections' }).waitFor();
  });

  it('repeated wrong passwords lock the account with a clear message', async () => {
    await adminApi.call('POST', '/api/admin/users', { id: '', username: 'carol', display_name: 'Carol', password: 'carol-Secret-9', admin: false });
    const p = await page('lockout');
    await p.goto(`${g.base}/#/login`);
    const attempt = async (password) => {
      await p.getByLabel('Username').fill('carol');
      await p.getByLabel('Password', { exact: true }).fill(password);
      const res = p.waitForResponse((r) => r.url().endsWith('/api/login'));
      await p.getByRole('button', { name: 'Sign in' }).click();
      const status = (await res).status();
      await p.waitForFunction(() => !document.querySelector('form button[type=submit]').disabled);
      return { status, text: await p.locator('#login-error').textContent() };
    };
    let last = { status: 0, text: '' };
    for (let i = 0; i < 8; i++) {
      last = await attempt(`wrong-${i}`);
      assert.ok(last.text, 'every failure shows a message');
      if (last.status === 423 || last.status === 429) break;
    }
    assert.ok(last.status === 423 || last.status === 429, `the account locks or is throttled (last status ${last.status})`);
    assert.match(last.text, /lock|too many|try again/i, `the message says so: ${last.text}`);
    // Even the right password is refused while locked.
    const right = await attempt('carol-Secret-9');
    assert.ok(right.status === 423 || right.status === 429, `locked out (status ${right.status})`);
    assert.match(right.text, /lock|too many|try again/i);
    assert.ok(p.url().includes('#/login'));
    await shot(p, 'login-locked');
  });

  it('malformed links get a clear answer, never a broken page', async () => {
    const p = await page('malformed');
    await loginUi(p, g.base, user.username, user.password);
    await p.getByRole('heading', { name: 'Your connections' }).waitFor();
    await p.goto(`${g.base}/#/%E0%A4%A/<script>`);
    await p.getByRole('heading', { name: 'Page not found' }).waitFor();
    await p.goto(`${g.base}/#/client/${encodeURIComponent("999999' OR 1=1--")}`);
    await p.locator('#status-title').filter({ hasText: 'refused' }).waitFor({ timeout: 15000 });
    assert.match(await p.locator('#status-message').textContent(), /access|not found|not allowed/i);
    await p.goto(`${g.base}/#/share/${encodeURIComponent('<img src=x>not-a-token')}`);
    await p.locator('#status-title').filter({ hasText: /refused|closed|lost/ }).waitFor({ timeout: 15000 });
    assert.ok((await p.locator('#status-message').textContent()).length > 10, 'a message explains the refusal');
    await p.goto(`${g.base}/#/client?token=not.a.jwt`);
    await p.locator('#status-message').filter({ hasText: 'not valid' }).waitFor({ timeout: 15000 });
    assert.equal(await p.evaluate(() => window.__pwned), undefined);
    await shot(p, 'malformed-token');
  });

  it('light and dark themes follow the system and the toggle', async () => {
    const p = await page('theme', { colorScheme: 'dark' });
    await p.goto(`${g.base}/#/login`);
    const bg = () => p.evaluate(() => getComputedStyle(document.body).backgroundColor);
    const lum = (c) => { const [r, gg, bb] = c.match(/\d+/g).map(Number); return (r + gg + bb) / 3; };
    assert.ok(lum(await bg()) < 80, `dark background under prefers-color-scheme: dark (${await bg()})`);
    const toggle = p.locator('.theme-toggle');
    await toggle.click(); // auto -> light
    assert.ok(lum(await bg()) > 200, 'light after the toggle');
    await toggle.click(); // light -> dark
    assert.ok(lum(await bg()) < 80, 'dark after the toggle');
    await shot(p, 'login-dark');
  });

  it('every form control on the main views has an accessible label', async () => {
    const admin = adminPage;
    const unlabelled = async () => admin.evaluate(() => [...document.querySelectorAll('input, select, textarea, button')]
      .filter((el) => el.offsetParent !== null || el.id === 'text-input')
      .filter((el) => !(el.labels && el.labels.length) && !el.getAttribute('aria-label') && !el.getAttribute('aria-labelledby') && !(el.textContent || '').trim())
      .map((el) => el.outerHTML.slice(0, 120)));
    const views = ['#/', '#/account', '#/admin/sessions', '#/admin/connections', `#/admin/connections/${encodeURIComponent(conn.id)}`,
      '#/admin/connections/new', '#/admin/users', '#/admin/groups', '#/admin/audit', '#/admin/recordings'];
    for (const v of views) {
      await admin.goto(`${g.base}/${v}`);
      await admin.waitForLoadState('networkidle');
      assert.deepEqual(await unlabelled(), [], `unlabelled controls on ${v}`);
    }
    await admin.goto(`${g.base}/#/client/${encodeURIComponent(conn.id)}`);
    await waitConnected(admin);
    await admin.getByRole('button', { name: 'Open menu' }).click();
    assert.deepEqual(await unlabelled(), [], 'unlabelled controls in the client menu');
    await admin.locator('#disconnect').click();
  });

  it('every state-changing request of the UI carried X-CSRF-Token', () => {
    const writes = pages.flatMap((p) => p.apiWrites || []);
    assert.ok(writes.length >= 5, `the UI made state-changing calls (${writes.length})`);
    assert.deepEqual(writes.filter((w) => !w.csrf), []);
  });

  it('no page raised a script error', () => {
    const errors = pages.flatMap((p) => p.errors)
      // Chromium logs the failed requests the tests provoke on purpose (401/423/429 logins).
      .filter((e) => !/Failed to load resource/.test(e));
    assert.deepEqual(errors, []);
  });
});
