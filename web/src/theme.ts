import { h, icon, replace } from './dom';

type Mode = 'auto' | 'light' | 'dark';
const KEY = 'guacr-theme';

function stored(): Mode {
  try {
    const v = localStorage.getItem(KEY);
    return v === 'light' || v === 'dark' ? v : 'auto';
  } catch {
    return 'auto';
  }
}

function apply(mode: Mode): void {
  if (mode === 'auto') document.documentElement.removeAttribute('data-theme');
  else document.documentElement.setAttribute('data-theme', mode);
}

export function initTheme(): void { apply(stored()); }

export function themeToggle(): HTMLButtonElement {
  const btn = h('button', { type: 'button', class: 'btn btn-ghost theme-toggle' });
  const paint = () => {
    const m = stored();
    const label = m === 'auto' ? 'Theme: follows the system' : m === 'light' ? 'Theme: light' : 'Theme: dark';
    btn.setAttribute('aria-label', `${label} (click to change)`);
    btn.title = label;
    replace(btn, icon(m === 'auto' ? 'auto' : m === 'light' ? 'sun' : 'moon'));
  };
  btn.addEventListener('click', () => {
    const order: Mode[] = ['auto', 'light', 'dark'];
    const next = order[(order.indexOf(stored()) + 1) % order.length];
    try { localStorage.setItem(KEY, next); } catch { /* private mode */ }
    apply(next);
    paint();
  });
  paint();
  return btn;
}
