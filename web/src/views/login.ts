import { api, ApiError, messageFor, Providers, setCsrf } from '../api';
import { field, h, replace } from '../dom';
import { go, Route, state } from '../main';
import { themeToggle } from '../theme';

export function safeNext(next: string | null): string {
  // Only ever go back to a route of this app.
  return next && next.startsWith('#/') && !next.startsWith('#/login') ? next : '#/';
}

export async function renderLogin(route: Route): Promise<void> {
  document.title = 'Sign in · guacr';
  const root = document.getElementById('app') as HTMLElement;
  const next = safeNext(route.query.get('next'));
  const alert = h('div', { class: 'alert', role: 'alert', 'aria-live': 'assertive', hidden: true, id: 'login-error' });
  const showError = (msg: string) => { alert.textContent = msg; alert.hidden = !msg; };
  const oidcError = route.query.get('error');
  if (oidcError) showError(oidcError);

  const username = h('input', { type: 'text', name: 'username', autocomplete: 'username', required: true, autofocus: true, autocapitalize: 'none', spellcheck: 'false' });
  const password = h('input', { type: 'password', name: 'password', autocomplete: 'current-password', required: true });
  const totp = h('input', { type: 'text', name: 'totp', inputmode: 'numeric', autocomplete: 'one-time-code', pattern: '[0-9 ]{6,8}', maxlength: '8' });
  const totpField = field('Authentication code', totp, 'The 6-digit code from your authenticator app.');
  totpField.hidden = true;
  const submit = h('button', { type: 'submit', class: 'btn btn-primary btn-block' }, 'Sign in');
  const form = h('form', { class: 'login-form', novalidate: true, 'aria-describedby': 'login-error' },
    field('Username', username), field('Password', password), totpField, submit);
  const oidcBox = h('div', { class: 'oidc' });

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    if (!username.value.trim() || !password.value) {
      showError('Enter your username and password.');
      (username.value.trim() ? password : username).focus();
      return;
    }
    showError('');
    submit.disabled = true;
    submit.textContent = 'Signing in…';
    try {
      const res = await api.login(username.value.trim(), password.value, totpField.hidden ? undefined : totp.value.replace(/\s/g, ''));
      state.user = res.user;
      setCsrf(res.csrf);
      go(res.user.must_change_password ? `#/account?next=${encodeURIComponent(next)}` : next);
    } catch (err) {
      if (err instanceof ApiError && err.code === 'totp_required') {
        const first = totpField.hidden;
        totpField.hidden = false;
        showError(first ? (messageFor('totp_required') as string) : err.message);
        totp.focus();
      } else if (err instanceof ApiError) {
        // Server messages are human; fall back to ours for bare codes.
        showError(err.message || messageFor(err.code) || 'Sign-in failed.');
        if (err.code === 'invalid_credentials') { password.value = ''; password.focus(); }
      } else {
        showError('Sign-in failed.');
      }
    } finally {
      submit.disabled = false;
      submit.textContent = 'Sign in';
    }
  });

  replace(root, h('main', { class: 'login-page', id: 'main' },
    h('div', { class: 'login-theme' }, themeToggle()),
    h('section', { class: 'card login-card', 'aria-labelledby': 'login-title' },
      h('div', { class: 'brand brand-lg' }, h('span', { class: 'brand-mark', 'aria-hidden': 'true' }, 'g'), 'guacr'),
      h('h1', { id: 'login-title' }, 'Sign in'),
      alert, form, oidcBox)));

  let providers: Providers | null = null;
  try { providers = await api.providers(); } catch { providers = null; }
  if (providers && providers.oidc && providers.oidc.length) {
    replace(oidcBox, h('div', { class: 'divider' }, h('span', null, 'or')),
      providers.oidc.map((p) => h('a', { class: 'btn btn-block', href: `/api/auth/oidc/${encodeURIComponent(p.id)}/login` }, p.label || `Sign in with ${p.id}`)));
  }
  if (providers && providers.password === false) form.hidden = true;
}
