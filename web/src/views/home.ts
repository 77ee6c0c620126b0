import { api, ConnectionSummary } from '../api';
import { h, icon, protocolIcon, replace } from '../dom';
import { requireUser, Route, shell } from '../main';

export async function renderHome(_route: Route): Promise<void> {
  if (!(await requireUser())) return;
  const main = shell('Connections', 'home');
  const search = h('input', { type: 'search', placeholder: 'Search connections', 'aria-label': 'Search connections', class: 'search-input', id: 'conn-search' });
  const list = h('div', { class: 'conn-groups', 'aria-live': 'polite' }, h('p', { class: 'muted' }, 'Loading…'));
  main.append(
    h('div', { class: 'page-head' }, h('h1', null, 'Your connections'),
      h('label', { class: 'search' }, icon('search'), search)),
    list);

  let conns: ConnectionSummary[];
  try {
    conns = await api.connections();
  } catch (e) {
    replace(list, h('div', { class: 'alert', role: 'alert' }, (e as Error).message));
    return;
  }

  const draw = () => {
    const q = search.value.trim().toLowerCase();
    const shown = conns.filter((c) => !q || [c.name, c.protocol, c.group, c.description ?? ''].some((s) => (s || '').toLowerCase().includes(q)));
    if (!conns.length) {
      replace(list, h('div', { class: 'empty' }, h('h2', null, 'No connections yet'),
        h('p', null, 'An administrator has not given you access to any connection.')));
      return;
    }
    if (!shown.length) {
      replace(list, h('p', { class: 'muted' }, 'No connection matches “', q, '”.'));
      return;
    }
    const groups = new Map<string, ConnectionSummary[]>();
    for (const c of shown) {
      const g = (c.group || '').split('/').map((s) => s.trim()).filter(Boolean).join(' / ');
      if (!groups.has(g)) groups.set(g, []);
      groups.get(g)!.push(c);
    }
    const names = [...groups.keys()].sort((a, b) => (a === '' ? -1 : b === '' ? 1 : a.localeCompare(b)));
    replace(list, names.map((g) => {
      const items = groups.get(g)!.sort((a, b) => a.name.localeCompare(b.name));
      return h('section', { class: 'conn-group', 'aria-label': g || 'Ungrouped' },
        g ? h('h2', { class: 'group-title' }, icon('folder'), g) : null,
        h('ul', { class: 'conn-list' }, items.map((c) => h('li', null,
          h('a', { class: 'conn-card', href: `#/client/${encodeURIComponent(c.id)}`, 'data-connection-id': c.id },
            h('span', { class: `proto proto-${c.protocol.replace(/[^a-z0-9]/gi, '')}` }, protocolIcon(c.protocol)),
            h('span', { class: 'conn-text' },
              h('span', { class: 'conn-name' }, c.name),
              h('span', { class: 'conn-meta' }, c.protocol.toUpperCase(), c.description ? ` · ${c.description}` : '')))))));
    }));
  };
  search.addEventListener('input', draw);
  draw();
  search.focus();
}
