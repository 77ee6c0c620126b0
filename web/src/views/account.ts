import { api, ApiError } from '../api';
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
      h('dt', null, 'Two-factor'), h('dd', null, user.totp_enabled ? 'Enabled' : 'Not enabled')),
    form);
}
