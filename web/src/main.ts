import './styles.css';
import { api, ApiError, setCsrf, setUnauthenticatedHandler, User } from './api';
import { h, icon, replace, toast } from './dom';
import { initTheme, themeToggle } from './theme';
import { renderLogin } from './views/login';
import { renderHome } from './views/home';
import { renderClient } from './views/client';
import { renderAdmin } from './views/admin';
import { renderPlayer } from './views/player';
import { renderAccount } from './views/account';

export interface Route { path: string[]; query: URLSearchParams }
export interface AppState { user: User | null }
export const state: AppState = { user: null };

/** Cleanup for the current view (disconnect a client, stop timers). */
let cleanup: (() => void) | null = null;
export function onLeave(fn: () => void): void {
  const prev = cleanup;
  cleanup = prev ? () => { prev(); fn(); } : fn;
}

export function parseRoute(): Route {
  const raw = location.hash.replace(/^#\/?/, '');
  const [pathPart, queryPart = ''] = raw.split('?', 2);
  const path = pathPart.split('/').filter(Boolean).map((s) => {
    try { return decodeURIComponent(s); } catch { return s; }
  });
  return { path, query: new URLSearchParams(queryPart) };
}

export function go(hash: string): void {
  if (location.hash === hash) void render();
  else location.hash = hash;
}

const root = document.getElementById('app') as HTMLElement;

/** The page frame: top bar + main area. Returns the main element. */
export function shell(title: string, active: string): HTMLElement {
  document.title = `${title} · guacr`;
  const user = state.user;
  const main = h('main', { id: 'main', class: 'main', tabindex: '-1' });
  const nav = h('nav', { class: 'nav', 'aria-label': 'Main' },
    h('a', { href: '#/', class: active === 'home' ? 'active' : '', 'aria-current': active === 'home' ? 'page' : null }, 'Connections'),
    user?.admin ? h('a', { href: '#/admin/sessions', class: active === 'admin' ? 'active' : '', 'aria-current': active === 'admin' ? 'page' : null }, 'Administration') : null,
  );
  const header = h('header', { class: 'topbar' },
    h('a', { class: 'skip', href: '#main', onclick: (e: Event) => { e.preventDefault(); main.focus(); } }, 'Skip to content'),
    h('a', { href: '#/', class: 'brand', 'aria-label': 'guacr home' }, h('span', { class: 'brand-mark', 'aria-hidden': 'true' }, 'g'), 'guacr'),
    nav,
    h('div', { class: 'topbar-right' },
      themeToggle(),
      user ? h('a', { href: '#/account', class: 'btn btn-ghost', title: 'Account' }, icon('user'), h('span', { class: 'hide-sm' }, user.display_name || user.username)) : null,
      user ? h('button', { type: 'button', class: 'btn btn-ghost', 'aria-label': 'Sign out', title: 'Sign out', onclick: () => void logout() }, icon('logout')) : null,
    ),
  );
  replace(root, header, main);
  return main;
}

/** A full-screen frame without the top bar (client, player). */
export function bare(title: string): HTMLElement {
  document.title = `${title} · guacr`;
  const main = h('main', { id: 'main', class: 'bare' });
  replace(root, main);
  return main;
}

async function logout(): Promise<void> {
  try { await api.logout(); } catch { /* cookie may already be gone */ }
  state.user = null;
  setCsrf('');
  go('#/login');
}

/** Where a user who must change its password is sent first (and back from). */
export function passwordChangeRoute(): string {
  const back = location.hash && !location.hash.startsWith('#/account') && !location.hash.startsWith('#/login') ? location.hash : '';
  return `#/account${back ? `?next=${encodeURIComponent(back)}` : ''}`;
}

/** Makes sure someone is signed in; otherwise sends them to the login page and back.
 *  A user who must change its password goes to the account page first (unless `passwordPage`). */
export async function requireUser(admin = false, passwordPage = false): Promise<User | null> {
  if (!state.user) {
    try {
      const me = await api.me();
      state.user = me.user;
      setCsrf(me.csrf);
    } catch (e) {
      if (e instanceof ApiError && (e.status === 401 || e.status === 403)) {
        const back = location.hash && !location.hash.startsWith('#/login') ? location.hash : '';
        go(`#/login${back ? `?next=${encodeURIComponent(back)}` : ''}`);
        return null;
      }
      showFatal(e);
      return null;
    }
  }
  if (state.user?.must_change_password && !passwordPage) {
    go(passwordChangeRoute());
    return null;
  }
  if (admin && !state.user?.admin) {
    const main = shell('Forbidden', '');
    main.append(h('div', { class: 'empty' }, h('h1', null, 'Administrators only'), h('p', null, 'Your account cannot open this page.')));
    return null;
  }
  return state.user;
}

export function showFatal(e: unknown): void {
  const main = shell('Error', '');
  main.append(h('div', { class: 'empty', role: 'alert' },
    h('h1', null, 'Something went wrong'),
    h('p', null, e instanceof Error ? e.message : String(e)),
    h('button', { type: 'button', class: 'btn', onclick: () => void render() }, 'Try again')));
}

let renderSeq = 0;
export function currentRender(): number { return renderSeq; }

async function render(): Promise<void> {
  const seq = ++renderSeq;
  if (cleanup) {
    const c = cleanup;
    cleanup = null;
    try { c(); } catch { /* ignore */ }
  }
  const route = parseRoute();
  const [first, ...rest] = route.path;
  try {
    switch (first) {
      case undefined:
      case '':
        await renderHome(route);
        break;
      case 'login':
        await renderLogin(route);
        break;
      case 'account':
        await renderAccount(route);
        break;
      case 'client':
        await renderClient({ kind: 'connection', route, id: rest[0] });
        break;
      case 'share':
        await renderClient({ kind: 'share', route, id: rest[0] });
        break;
      case 'admin':
        if (rest[0] === 'recordings' && rest[1]) await renderPlayer(rest[1]);
        else await renderAdmin(route, rest);
        break;
      default: {
        const main = shell('Not found', '');
        main.append(h('div', { class: 'empty' }, h('h1', null, 'Page not found'), h('p', null, h('a', { href: '#/' }, 'Back to your connections'))));
      }
    }
  } catch (e) {
    if (seq === renderSeq) showFatal(e);
  }
}

setUnauthenticatedHandler(() => {
  state.user = null;
  if (!location.hash.startsWith('#/login')) {
    toast('Your session has ended. Please sign in again.', 'error');
    go(`#/login?next=${encodeURIComponent(location.hash)}`);
  }
});

initTheme();
window.addEventListener('hashchange', () => void render());
void render();
