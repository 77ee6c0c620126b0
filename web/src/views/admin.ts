import { api, ApiError, AuditEvent, Connection, Group, ParamSpec, ProtocolSpec, User } from '../api';
import { field, formatBytes, formatDuration, formatTime, h, icon, protocolIcon, replace, toast } from '../dom';
import { go, onLeave, requireUser, Route, shell } from '../main';

const TABS: [string, string][] = [
  ['sessions', 'Live sessions'], ['connections', 'Connections'], ['users', 'Users'],
  ['groups', 'Groups'], ['audit', 'Audit log'], ['recordings', 'Recordings'],
];

function errorBox(e: unknown): HTMLElement {
  return h('div', { class: 'alert', role: 'alert' }, e instanceof Error ? e.message : String(e));
}

function table(head: string[], rows: HTMLElement[], caption: string, id?: string): HTMLElement {
  return h('div', { class: 'table-wrap' }, h('table', { class: 'table', id: id ?? null },
    h('caption', { class: 'sr-only' }, caption),
    h('thead', null, h('tr', null, head.map((c) => h('th', { scope: 'col' }, c)))),
    h('tbody', null, rows.length ? rows : h('tr', null, h('td', { colspan: String(head.length), class: 'muted' }, 'Nothing here yet.')))));
}

async function guarded(fn: () => Promise<void>, okMessage?: string): Promise<boolean> {
  try {
    await fn();
    if (okMessage) toast(okMessage);
    return true;
  } catch (e) {
    toast(e instanceof ApiError ? e.message : String(e), 'error');
    return false;
  }
}

export async function renderAdmin(route: Route, rest: string[]): Promise<void> {
  if (!(await requireUser(true))) return;
  const tab = rest[0] || 'sessions';
  const main = shell('Administration', 'admin');
  const body = h('div', { class: 'admin-body' });
  main.append(
    h('div', { class: 'page-head' }, h('h1', null, 'Administration')),
    h('nav', { class: 'tabs', 'aria-label': 'Administration sections' },
      TABS.map(([id, label]) => h('a', { href: `#/admin/${id}`, class: id === tab ? 'tab active' : 'tab', 'aria-current': id === tab ? 'page' : null }, label))),
    body);
  switch (tab) {
    case 'sessions': return sessionsView(body);
    case 'connections': return rest[1] ? connectionEditor(body, rest[1]) : connectionsView(body);
    case 'users': return usersView(body);
    case 'groups': return groupsView(body);
    case 'audit': return auditView(body, route);
    case 'recordings': return recordingsView(body);
    default: replace(body, h('p', null, 'Unknown section.'));
  }
}

// ---------------------------------------------------------------- live sessions
async function sessionsView(body: HTMLElement): Promise<void> {
  const list = h('div');
  const refresh = h('button', { type: 'button', class: 'btn', onclick: () => void load() }, icon('refresh'), 'Refresh');
  replace(body, h('div', { class: 'toolbar' }, h('h2', null, 'Live sessions'), refresh), list);
  // Refresh every 5 s, unless an admin is typing a reason.
  const timer = window.setInterval(() => {
    const busy = [...list.querySelectorAll<HTMLInputElement>('.kill-reason')].some((i) => i.value || i === document.activeElement);
    if (!busy && document.visibilityState === 'visible') void load();
  }, 5000);
  onLeave(() => window.clearInterval(timer));
  async function load(): Promise<void> {
    try {
      const sessions = await api.sessions();
      replace(list, table(['Connection', 'User', 'From', 'Started', 'Users', ''], sessions.map((s) => {
        const reason = h('input', { type: 'text', placeholder: 'Reason (shown to the user)', 'aria-label': `Reason for closing ${s.connection_name ?? s.id}`, class: 'input-sm kill-reason' });
        return h('tr', { 'data-session-id': s.id },
          h('td', null, h('span', { class: 'cell-icon' }, protocolIcon(s.protocol || ''), s.connection_name || s.connection_id || '')),
          h('td', null, s.username || '', s.via === 'guacd' ? h('span', { class: 'badge badge-plain', title: 'Opened over the guacd protocol (TCP 4822)' }, 'guacd') : null),
          h('td', { class: 'mono' }, s.remote_addr || ''),
          h('td', null, formatTime(s.started)), h('td', null, String(s.users ?? '')),
          h('td', { class: 'row-actions' },
            h('a', { class: 'btn btn-small', href: `#/client?join=${encodeURIComponent(s.id)}&read_only=1` }, 'Watch'),
            h('a', { class: 'btn btn-small', href: `#/client?join=${encodeURIComponent(s.id)}` }, 'Join'),
            reason,
            h('button', { type: 'button', class: 'btn btn-small btn-danger kill', onclick: async () => {
              if (!confirm(`Close the session of ${s.username || 'this user'} on ${s.connection_name || s.id}?`)) return;
              if (await guarded(() => api.killSession(s.id, reason.value.trim() || undefined), 'Session closed.')) void load();
            } }, 'Kill')));
      }), 'Live sessions', 'sessions-table'));
    } catch (e) {
      replace(list, errorBox(e));
    }
  }
  await load();
}

// ---------------------------------------------------------------- connections
async function connectionsView(body: HTMLElement): Promise<void> {
  replace(body, h('p', { class: 'muted' }, 'Loading…'));
  let conns: Connection[];
  try { conns = await api.adminConnections(); } catch (e) { replace(body, errorBox(e)); return; }
  conns.sort((a, b) => (a.group || '').localeCompare(b.group || '') || a.name.localeCompare(b.name));
  replace(body,
    h('div', { class: 'toolbar' }, h('h2', null, 'Connections'),
      h('a', { class: 'btn btn-primary', href: '#/admin/connections/new' }, 'New connection')),
    table(['Name', 'Protocol', 'Folder', 'Description', ''], conns.map((c) => h('tr', null,
      h('td', null, h('a', { href: `#/admin/connections/${encodeURIComponent(c.id)}` }, c.name)),
      h('td', null, h('span', { class: 'cell-icon' }, protocolIcon(c.protocol), c.protocol)),
      h('td', null, c.group || ''), h('td', null, c.description || ''),
      h('td', { class: 'row-actions' }, h('a', { class: 'btn btn-small', href: `#/client/${encodeURIComponent(c.id)}` }, 'Connect')))), 'Connections', 'connections-table'));
}

function paramControl(spec: ParamSpec, value: string | undefined): HTMLElement {
  const name = spec.name;
  const def = spec.default === undefined || spec.default === null ? '' : String(spec.default);
  const v = value ?? '';
  let ctl: HTMLInputElement | HTMLSelectElement | HTMLTextAreaElement;
  switch (spec.kind) {
    case 'boolean':
      ctl = h('input', { type: 'checkbox', checked: v === 'true' || (v === '' && def === 'true') });
      ctl.dataset.default = def === 'true' ? 'true' : 'false';
      break;
    case 'enum': {
      const opts = spec.options ?? [];
      ctl = h('select', null, h('option', { value: '' }, def ? `Default (${def})` : '—'),
        opts.map((o) => h('option', { value: o }, o)));
      ctl.value = opts.includes(v) ? v : '';
      break;
    }
    case 'multiline':
      ctl = h('textarea', { rows: '4', spellcheck: 'false', class: spec.secret ? 'masked' : null, placeholder: def });
      ctl.value = v;
      break;
    case 'number':
      ctl = h('input', { type: 'number', inputmode: 'numeric', placeholder: def, value: v });
      break;
    default:
      ctl = h('input', { type: spec.secret || spec.kind === 'password' ? 'password' : 'text', placeholder: def, value: v, autocomplete: spec.secret || spec.kind === 'password' ? 'new-password' : 'off', spellcheck: 'false' });
  }
  ctl.dataset.param = name;
  ctl.dataset.kind = spec.kind;
  ctl.name = `param-${name}`;
  const label = spec.label || name;
  const hint = spec.secret && v === '********' ? 'Stored. Leave as is to keep it, or replace it.' : name !== label ? name : undefined;
  return field(label, ctl, hint);
}

function readParams(form: HTMLElement): Record<string, string> {
  const out: Record<string, string> = {};
  form.querySelectorAll<HTMLInputElement | HTMLSelectElement | HTMLTextAreaElement>('[data-param]').forEach((el) => {
    const name = el.dataset.param as string;
    if (el instanceof HTMLInputElement && el.type === 'checkbox') {
      // Only what differs from the handler's default is stored.
      const def = el.dataset.default === 'true';
      if (el.checked !== def) out[name] = el.checked ? 'true' : 'false';
    } else if (el.value !== '') {
      out[name] = el.value;
    }
  });
  return out;
}

async function connectionEditor(body: HTMLElement, id: string): Promise<void> {
  replace(body, h('p', { class: 'muted' }, 'Loading…'));
  const isNew = id === 'new';
  let protocols: ProtocolSpec[];
  let conn: Connection;
  let users: User[] = [];
  let groups: Group[] = [];
  let perms = { users: [] as string[], groups: [] as string[] };
  try {
    protocols = await api.protocols();
    conn = isNew ? { id: '', name: '', protocol: protocols[0]?.name ?? 'ssh', group: '', description: '', params: {} } : await api.getConnection(id);
    if (!isNew) {
      [users, groups, perms] = await Promise.all([api.users(), api.groups(), api.getPermissions(id)]);
    }
  } catch (e) {
    replace(body, errorBox(e));
    return;
  }
  const name = h('input', { type: 'text', required: true, value: conn.name, id: 'conn-name' });
  const folder = h('input', { type: 'text', value: conn.group || '', placeholder: 'Folder/Subfolder', id: 'conn-group' });
  const desc = h('input', { type: 'text', value: conn.description || '', id: 'conn-desc' });
  const proto = h('select', { id: 'conn-protocol' }, protocols.map((p) => h('option', { value: p.name }, p.name.toUpperCase())));
  if (!protocols.some((p) => p.name === conn.protocol)) proto.append(h('option', { value: conn.protocol }, conn.protocol));
  proto.value = conn.protocol;
  const paramBox = h('div', { class: 'param-sections' });
  const drawParams = () => {
    const current = { ...conn.params, ...readParams(paramBox) };
    const spec = protocols.find((p) => p.name === proto.value);
    if (!spec) { replace(paramBox, h('p', { class: 'muted' }, 'This protocol has no parameter schema.')); return; }
    const sections = new Map<string, ParamSpec[]>();
    for (const p of spec.params) {
      const s = p.section || 'other';
      if (!sections.has(s)) sections.set(s, []);
      sections.get(s)!.push(p);
    }
    replace(paramBox, [...sections.entries()].map(([s, params], i) =>
      h('details', { class: 'param-section', open: i < 2 ? true : null },
        h('summary', null, s.charAt(0).toUpperCase() + s.slice(1).replace(/[-_]/g, ' ')),
        h('div', { class: 'grid-2' }, params.map((p) => paramControl(p, current[p.name]))))));
  };
  proto.addEventListener('change', drawParams);
  drawParams();
  const alert = h('div', { class: 'alert', role: 'alert', hidden: true });
  const save = h('button', { type: 'submit', class: 'btn btn-primary', id: 'conn-save' }, isNew ? 'Create connection' : 'Save');
  const form = h('form', { class: 'card', id: 'connection-form' },
    h('h2', null, isNew ? 'New connection' : 'Edit connection'), alert,
    h('div', { class: 'grid-2' }, field('Name', name), field('Protocol', proto), field('Folder', folder, 'Use / for sub-folders.'), field('Description', desc)),
    h('h3', null, 'Parameters'), paramBox,
    h('div', { class: 'actions' }, save,
      !isNew ? h('button', { type: 'button', class: 'btn btn-danger', onclick: async () => {
        if (!confirm(`Delete the connection ${conn.name}?`)) return;
        if (await guarded(() => api.deleteConnection(conn.id), 'Connection deleted.')) go('#/admin/connections');
      } }, 'Delete') : null,
      h('a', { class: 'btn', href: '#/admin/connections' }, 'Cancel')));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    alert.hidden = true;
    if (!name.value.trim()) { alert.textContent = 'The connection needs a name.'; alert.hidden = false; name.focus(); return; }
    const data = { name: name.value.trim(), protocol: proto.value, group: folder.value.trim(), description: desc.value.trim(), params: readParams(paramBox) };
    try {
      if (isNew) {
        const created = await api.createConnection(data);
        toast('Connection created.');
        go(`#/admin/connections/${encodeURIComponent(created.id)}`);
      } else {
        conn = await api.updateConnection({ ...data, id: conn.id });
        toast('Connection saved.');
      }
    } catch (err) {
      alert.textContent = err instanceof Error ? err.message : String(err);
      alert.hidden = false;
    }
  });
  const parts: HTMLElement[] = [form];
  if (!isNew) {
    const ub = users.map((u) => h('input', { type: 'checkbox', checked: perms.users.includes(u.id), 'data-user': u.id }));
    const gb = groups.map((g) => h('input', { type: 'checkbox', checked: perms.groups.includes(g.id), 'data-group': g.id }));
    const permForm = h('form', { class: 'card', id: 'permissions-form' },
      h('h2', null, 'Who may connect'),
      h('div', { class: 'grid-2' },
        h('fieldset', null, h('legend', null, 'Users'), users.length ? users.map((u, i) => field(u.display_name ? `${u.display_name} (${u.username})` : u.username, ub[i])) : h('p', { class: 'muted' }, 'No users.')),
        h('fieldset', null, h('legend', null, 'Groups'), groups.length ? groups.map((g, i) => field(g.name, gb[i])) : h('p', { class: 'muted' }, 'No groups.'))),
      h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'btn btn-primary' }, 'Save permissions')));
    permForm.addEventListener('submit', (e) => {
      e.preventDefault();
      void guarded(() => api.setPermissions(conn.id, {
        users: ub.filter((b) => b.checked).map((b) => b.dataset.user as string),
        groups: gb.filter((b) => b.checked).map((b) => b.dataset.group as string),
      }).then(() => undefined), 'Permissions saved.');
    });
    parts.push(permForm);
  }
  replace(body, parts);
}

// ---------------------------------------------------------------- users
async function usersView(body: HTMLElement): Promise<void> {
  replace(body, h('p', { class: 'muted' }, 'Loading…'));
  let users: User[]; let groups: Group[];
  try { [users, groups] = await Promise.all([api.users(), api.groups()]); } catch (e) { replace(body, errorBox(e)); return; }
  const groupName = (id: string) => groups.find((g) => g.id === id)?.name ?? id;
  const editor = h('div');
  const edit = (u: User | null) => replace(editor, userForm(u, groups, () => void usersView(body)));
  replace(body,
    h('div', { class: 'toolbar' }, h('h2', null, 'Users'), h('button', { type: 'button', class: 'btn btn-primary', id: 'user-new', onclick: () => edit(null) }, 'New user')),
    editor,
    table(['Username', 'Name', 'Role', 'Status', 'Groups', ''], users.map((u) => h('tr', { 'data-user-id': u.id },
      h('td', null, u.username), h('td', null, u.display_name || ''),
      h('td', null, u.admin ? h('span', { class: 'badge' }, icon('shield'), 'Admin') : 'User'),
      h('td', null, u.disabled ? h('span', { class: 'badge badge-warn' }, 'Disabled') : 'Active'),
      h('td', null, (u.groups ?? []).map(groupName).join(', ')),
      h('td', { class: 'row-actions' }, h('button', { type: 'button', class: 'btn btn-small', onclick: () => edit(u) }, 'Edit')))), 'Users', 'users-table'));
}

function userForm(u: User | null, groups: Group[], done: () => void): HTMLElement {
  const username = h('input', { type: 'text', required: true, value: u?.username ?? '', autocomplete: 'off', id: 'user-username' });
  const display = h('input', { type: 'text', value: u?.display_name ?? '', id: 'user-display' });
  const password = h('input', { type: 'password', autocomplete: 'new-password', id: 'user-password' });
  const admin = h('input', { type: 'checkbox', checked: !!u?.admin, id: 'user-admin' });
  const disabled = h('input', { type: 'checkbox', checked: !!u?.disabled, id: 'user-disabled' });
  const mustChange = h('input', { type: 'checkbox', checked: !!u?.must_change_password, id: 'user-must-change' });
  const gboxes = groups.map((g) => h('input', { type: 'checkbox', checked: !!u?.groups?.includes(g.id), 'data-group': g.id }));
  const alert = h('div', { class: 'alert', role: 'alert', hidden: true });
  const form = h('form', { class: 'card', id: 'user-form' },
    h('h3', null, u ? `Edit ${u.username}` : 'New user'), alert,
    h('div', { class: 'grid-2' },
      field('Username', username), field('Display name', display),
      h('div', null, field(u ? 'New password (leave empty to keep)' : 'Password', password),
        field('Must choose a new password at the next sign-in', mustChange)),
      h('div', null, field('Administrator', admin), u ? field('Disabled (cannot sign in)', disabled) : null)),
    groups.length ? h('fieldset', null, h('legend', null, 'Groups'), groups.map((g, i) => field(g.name, gboxes[i]))) : null,
    h('div', { class: 'actions' },
      h('button', { type: 'submit', class: 'btn btn-primary' }, u ? 'Save' : 'Create user'),
      u?.totp_enabled ? h('button', { type: 'button', class: 'btn', id: 'user-reset-totp', onclick: async () => {
        if (confirm(`Turn off two-factor authentication of ${u.username} (a lost authenticator)?`)
          && await guarded(() => api.resetTotp(u.id), 'Two-factor authentication reset.')) done();
      } }, 'Reset two-factor') : null,
      u ? h('button', { type: 'button', class: 'btn btn-danger', onclick: async () => {
        if (confirm(`Delete the user ${u.username}?`) && await guarded(() => api.deleteUser(u.id), 'User deleted.')) done();
      } }, 'Delete') : null,
      h('button', { type: 'button', class: 'btn', onclick: () => form.remove() }, 'Cancel')));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    alert.hidden = true;
    const data: Partial<User> & { password?: string } = {
      username: username.value.trim(), display_name: display.value.trim(), admin: admin.checked,
      groups: gboxes.filter((b) => b.checked).map((b) => b.dataset.group as string),
    };
    if (u) data.disabled = disabled.checked;
    if (password.value) {
      data.password = password.value;
      data.must_change_password = mustChange.checked;
    }
    if (!data.username) { alert.textContent = 'Enter a username.'; alert.hidden = false; return; }
    if (!u && !data.password) { alert.textContent = 'Enter a password for the new user.'; alert.hidden = false; return; }
    try {
      if (u) await api.updateUser(u.id, data); else await api.createUser(data);
      toast(u ? 'User saved.' : 'User created.');
      done();
    } catch (err) {
      alert.textContent = err instanceof Error ? err.message : String(err);
      alert.hidden = false;
    }
  });
  return form;
}

// ---------------------------------------------------------------- groups
async function groupsView(body: HTMLElement): Promise<void> {
  replace(body, h('p', { class: 'muted' }, 'Loading…'));
  let users: User[]; let groups: Group[];
  try { [users, groups] = await Promise.all([api.users(), api.groups()]); } catch (e) { replace(body, errorBox(e)); return; }
  const userName = (id: string) => users.find((u) => u.id === id)?.username ?? id;
  const editor = h('div');
  const edit = (g: Group | null) => {
    const name = h('input', { type: 'text', required: true, value: g?.name ?? '', id: 'group-name' });
    const boxes = users.map((u) => h('input', { type: 'checkbox', checked: !!g?.members.includes(u.id), 'data-user': u.id }));
    const form = h('form', { class: 'card', id: 'group-form' },
      h('h3', null, g ? `Edit ${g.name}` : 'New group'), field('Name', name),
      h('fieldset', null, h('legend', null, 'Members'), users.map((u, i) => field(u.username, boxes[i]))),
      h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'btn btn-primary' }, g ? 'Save' : 'Create group'),
        g ? h('button', { type: 'button', class: 'btn btn-danger', onclick: async () => {
          if (confirm(`Delete the group ${g.name}?`) && await guarded(() => api.deleteGroup(g.id), 'Group deleted.')) void groupsView(body);
        } }, 'Delete') : null,
        h('button', { type: 'button', class: 'btn', onclick: () => form.remove() }, 'Cancel')));
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      const members = boxes.filter((b) => b.checked).map((b) => b.dataset.user as string);
      if (!name.value.trim()) { toast('Enter a group name.', 'error'); return; }
      const ok = await guarded(async () => {
        if (g) await api.updateGroup({ id: g.id, name: name.value.trim(), members });
        else await api.createGroup({ name: name.value.trim(), members });
      }, g ? 'Group saved.' : 'Group created.');
      if (ok) void groupsView(body);
    });
    replace(editor, form);
  };
  replace(body,
    h('div', { class: 'toolbar' }, h('h2', null, 'Groups'), h('button', { type: 'button', class: 'btn btn-primary', onclick: () => edit(null) }, 'New group')),
    editor,
    table(['Name', 'Members', ''], groups.map((g) => h('tr', null,
      h('td', null, g.name), h('td', null, g.members.map(userName).join(', ')),
      h('td', { class: 'row-actions' }, h('button', { type: 'button', class: 'btn btn-small', onclick: () => edit(g) }, 'Edit')))), 'Groups', 'groups-table'));
}

// ---------------------------------------------------------------- audit
const AUDIT_KINDS = ['login.success', 'login.failure', 'login.locked', 'session.start', 'session.end', 'session.join', 'session.leave',
  'session.share', 'session.kill', 'access.denied', 'admin.change', 'token.refused', 'csrf.refused'];

async function auditView(body: HTMLElement, route: Route): Promise<void> {
  const kind = h('select', { id: 'audit-kind' }, h('option', { value: '' }, 'All events'), AUDIT_KINDS.map((k) => h('option', { value: k }, k)));
  kind.value = route.query.get('kind') ?? '';
  const user = h('input', { type: 'text', id: 'audit-user', value: route.query.get('user') ?? '', placeholder: 'username' });
  const limit = h('select', { id: 'audit-limit' }, ['50', '100', '500'].map((n) => h('option', { value: n }, n)));
  const rowsBox = h('div', { id: 'audit-rows' });
  const more = h('button', { type: 'button', class: 'btn', hidden: true }, 'Older events');
  let events: AuditEvent[] = [];
  const form = h('form', { class: 'filters', role: 'search', 'aria-label': 'Filter the audit log' },
    field('Event', kind), field('User', user), field('Show', limit),
    h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'btn btn-primary' }, 'Apply')));
  const draw = () => {
    replace(rowsBox, table(['Time', 'Event', 'User', 'From', 'Connection', 'Details'], events.map((e) => h('tr', { 'data-kind': e.kind },
      h('td', { class: 'nowrap' }, formatTime(e.time)),
      h('td', null, h('span', { class: `badge badge-${e.kind.includes('fail') || e.kind.includes('refused') || e.kind.includes('locked') || e.kind.includes('kill') ? 'warn' : 'plain'}` }, e.kind)),
      h('td', null, e.username || ''), h('td', { class: 'mono' }, e.remote_addr || ''),
      h('td', null, e.connection_name || e.connection_id || '', e.protocol ? ` (${e.protocol})` : ''),
      h('td', { class: 'detail' }, [
        e.detail || '',
        e.duration_ms !== undefined && e.duration_ms !== null ? ` · ${formatDuration(e.duration_ms)}` : '',
        e.bytes_in || e.bytes_out ? ` · ${formatBytes(e.bytes_in ?? 0)} in / ${formatBytes(e.bytes_out ?? 0)} out` : '',
        e.recording_path ? ` · recording ${e.recording_path}` : '',
      ].join('')))), 'Audit events', 'audit-table'));
  };
  const load = async (append: boolean) => {
    try {
      const q = { limit: Number(limit.value), kind: kind.value, user: user.value.trim(), before: append && events.length ? events[events.length - 1].id : undefined };
      const page = await api.audit(q);
      events = append ? events.concat(page) : page;
      more.hidden = page.length < q.limit;
      draw();
    } catch (e) {
      replace(rowsBox, errorBox(e));
    }
  };
  form.addEventListener('submit', (e) => { e.preventDefault(); void load(false); });
  more.addEventListener('click', () => void load(true));
  replace(body, h('div', { class: 'toolbar' }, h('h2', null, 'Audit log')), form, rowsBox, h('div', { class: 'actions' }, more));
  await load(false);
}

// ---------------------------------------------------------------- recordings
async function recordingsView(body: HTMLElement): Promise<void> {
  replace(body, h('p', { class: 'muted' }, 'Loading…'));
  try {
    const recs = await api.recordings();
    recs.sort((a, b) => (b.modified || '').localeCompare(a.modified || ''));
    replace(body, h('div', { class: 'toolbar' }, h('h2', null, 'Recordings')),
      table(['Name', 'Size', 'Modified', ''], recs.map((r) => h('tr', { 'data-recording': r.name, 'data-size': String(r.size) },
        h('td', { class: 'mono' }, r.name), h('td', null, formatBytes(r.size)), h('td', null, formatTime(r.modified)),
        h('td', { class: 'row-actions' }, r.encrypted
          ? h('span', { class: 'badge', title: 'Encrypted at rest: decrypt it with guacr recording decrypt' }, icon('key'), 'Encrypted')
          : h('a', { class: 'btn btn-small', href: `#/admin/recordings/${encodeURIComponent(r.name)}` }, icon('play'), 'Play')))), 'Recordings', 'recordings-table'));
  } catch (e) {
    replace(body, errorBox(e));
  }
}
