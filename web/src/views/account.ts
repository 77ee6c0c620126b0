import { api, ApiError, TotpEnrolment, User } from '../api';
import { field, h, toast } from '../dom';
import { go, requireUser, Route, shell } from '../main';
import { safeNext } from './login';

export async function renderAccount(route: Route): Promise<void> {
  const user = await requireUser(false, true);
  if (!user) return;
  const forced = !!user.must_change_password;
  const main = shell('Account', 'account');
  const current = h('input', { type: 'password', autocomplete: 'current-password', required: true });
  const next = h('input', { type: 'password', autocomplete: 'new-password', required: true, minlength: '8' });
  const again = h('input', { type: 'password', autocomplete: 'new-password', required: true });
  const alert = h('div', { class: 'alert', role: 'alert', hidden: true });
  const notice = forced
    ? h('div', { class: 'alert alert-info', role: 'status', id: 'password-change-required' },
      'Your password was set for you: choose a new one to continue.')
    : null;
  const form = h('form', { class: 'card form-narrow' },
    h('h2', null, 'Change password'), notice, alert,
    field('Current password', current), field('New password', next, 'At least 8 characters.'), field('Repeat the new password', again),
    h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'btn btn-primary' }, 'Change password')));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    alert.hidden = true;
    if (next.value !== again.value) { alert.textContent = 'The two new passwords differ.'; alert.hidden = false; return; }
    try {
      await api.changePassword(current.value, next.value);
      form.reset();
      toast('Password changed.');
      if (forced) {
        user.must_change_password = false;
        go(safeNext(route.query.get('next')));
      }
    } catch (err) {
      alert.textContent = err instanceof ApiError ? err.message : 'Could not change the password.';
      alert.hidden = false;
    }
  });
  main.append(h('div', { class: 'page-head' }, h('h1', null, 'Account')),
    h('dl', { class: 'card kv' },
      h('dt', null, 'Username'), h('dd', null, user.username),
      h('dt', null, 'Name'), h('dd', null, user.display_name || '—'),
      h('dt', null, 'Role'), h('dd', null, user.admin ? 'Administrator' : 'User'),
      h('dt', null, 'Two-factor'), h('dd', { id: 'totp-status' }, user.totp_enabled ? 'Enabled' : 'Not enabled')),
    form, totpCard(user, () => void renderAccount(route)));
}

/** Two-factor authentication: set up (password, QR code, confirming code) or turn off (password). */
function totpCard(user: User, rerender: () => void): HTMLElement {
  const alert = h('div', { class: 'alert', role: 'alert', hidden: true });
  const fail = (err: unknown, fallback: string): void => {
    alert.textContent = err instanceof ApiError ? err.message : fallback;
    alert.hidden = false;
  };
  const password = h('input', { type: 'password', autocomplete: 'current-password', required: true, id: 'totp-password' });
  const card = h('form', { class: 'card form-narrow', id: 'totp-card' }, h('h2', null, 'Two-factor authentication'), alert);
  if (user.totp_enabled) {
    card.append(h('p', null, 'Signing in asks for a code from your authenticator app.'),
      field('Password', password),
      h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'btn btn-danger' }, 'Turn off two-factor')));
    card.addEventListener('submit', async (e) => {
      e.preventDefault();
      alert.hidden = true;
      try {
        await api.totpDisable(password.value);
        user.totp_enabled = false;
        toast('Two-factor authentication is off.');
        rerender();
      } catch (err) { fail(err, 'Could not turn two-factor authentication off.'); }
    });
    return card;
  }
  card.append(h('p', null, 'Protect your account with a code from an authenticator app (TOTP) at each sign-in.'),
    field('Password', password),
    h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'btn btn-primary' }, 'Set up two-factor')));
  card.addEventListener('submit', async (e) => {
    e.preventDefault();
    alert.hidden = true;
    let enrolment: TotpEnrolment;
    try { enrolment = await api.totpBegin(password.value); } catch (err) { fail(err, 'Could not start the set-up.'); return; }
    const code = h('input', { type: 'text', inputmode: 'numeric', autocomplete: 'one-time-code', required: true, id: 'totp-code', maxlength: '8' });
    const secret = h('code', { id: 'totp-secret' });
    secret.textContent = enrolment.secret;
    const qr = enrolment.qr_svg
      ? h('img', { id: 'totp-qr', class: 'totp-qr', alt: 'QR code for your authenticator app', src: `data:image/svg+xml;charset=utf-8,${encodeURIComponent(enrolment.qr_svg)}` })
      : null;
    const step = h('form', { class: 'card form-narrow', id: 'totp-confirm' },
      h('h2', null, 'Scan, then confirm'), alert,
      h('p', null, 'Scan the code with your authenticator app, or type this key into it: '), secret, qr,
      field('Code from the app', code),
      h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'btn btn-primary' }, 'Turn on two-factor')));
    step.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      alert.hidden = true;
      try {
        await api.totpConfirm(code.value.trim());
        user.totp_enabled = true;
        toast('Two-factor authentication is on.');
        rerender();
      } catch (err) { fail(err, 'Could not confirm the code.'); }
    });
    card.replaceWith(step);
    code.focus();
  });
  return card;
}
