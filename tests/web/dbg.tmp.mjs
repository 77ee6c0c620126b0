import { Guacr, ApiClient, launchBrowser, newPage, loginUi, waitConnected, settle, peers } from './harness.mjs';
const env = peers();
const g = await Guacr.start();
try {
  const api = new ApiClient(g.base); await api.login(g.admin.username, g.admin.password);
  const c = await api.call('POST', '/api/admin/connections', { id: '', name: 'Build server', protocol: 'ssh', group: 'Servers/Linux', description: 'loopback', params: { hostname: env.GUACR_TEST_HOST, port: env.GUACR_TEST_SSH_PORT, username: env.GUACR_TEST_PW_USER, password: env.GUACR_TEST_PW_PASSWORD } });
  await api.call('POST', '/api/admin/connections', { id: '', name: 'Legacy box', protocol: 'telnet', group: 'Servers/Legacy', description: 'telnet', params: { hostname: '127.0.0.1', port: '2323' } });
  await api.call('POST', '/api/admin/connections', { id: '', name: 'Desktop', protocol: 'vnc', group: '', description: 'x11vnc', params: { hostname: '127.0.0.1', port: '5901' } }).catch((e) => console.log(String(e)));
  const b = await launchBrowser(); const p = await newPage(b, 'dbg', { colorScheme: 'dark' });
  await loginUi(p, g.base, g.admin.username, g.admin.password);
  await p.waitForTimeout(1000);
  await p.screenshot({ path: '/tmp/guacr-web-artifacts/dbg-home-dark.png' });
  await p.goto(`${g.base}/#/client/${c.id}`); await waitConnected(p); await settle(p);
  await p.getByRole('button', { name: 'Open menu' }).click();
  await p.locator('#share-rw').click(); await p.waitForTimeout(500);
  await p.screenshot({ path: '/tmp/guacr-web-artifacts/dbg-menu.png' });
  await p.goto(`${g.base}/#/admin/connections/new`); await p.waitForTimeout(1000);
  await p.locator('#conn-protocol').selectOption('ssh'); await p.waitForTimeout(300);
  await p.screenshot({ path: '/tmp/guacr-web-artifacts/dbg-new-conn.png', fullPage: true });
  console.log(p.errors);
  const protos = await api.call('GET', '/api/protocols'); console.log(protos.map((x) => `${x.name}:${x.params.length}`).join(' '), JSON.stringify(protos[0].params.slice(0, 3)));
  await b.close();
} finally { await g.stop(); }
