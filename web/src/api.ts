// JSON API client for docs/web-api.md. Every call sends X-CSRF-Token.

export interface User {
  id: string;
  username: string;
  display_name?: string;
  admin: boolean;
  totp_enabled?: boolean;
  disabled?: boolean;
  groups?: string[];
  /** Until this user picks a new password, the API answers 403 password_change_required. */
  must_change_password?: boolean;
}
/** A TOTP enrolment: the secret for manual entry, its otpauth:// URI and a QR code (SVG). */
export interface TotpEnrolment { secret: string; uri: string; qr_svg: string | null }
export interface ConnectionSummary { id: string; name: string; protocol: string; group: string; description?: string }
export interface ParamSpec {
  name: string;
  label?: string;
  kind: 'text' | 'password' | 'number' | 'boolean' | 'enum' | 'multiline' | string;
  options?: string[];
  default?: string | number | boolean | null;
  section?: string;
  secret?: boolean;
}
export interface ProtocolSpec { name: string; params: ParamSpec[] }
export interface Connection extends ConnectionSummary { params: Record<string, string> }
export interface Group { id: string; name: string; members: string[] }
export interface LiveSession {
  id: string; connection_id?: string; connection_name?: string; protocol?: string;
  username?: string; remote_addr?: string; started?: string; users?: number; via?: string;
}
export interface AuditEvent {
  id: string; time: string; kind: string; username?: string; remote_addr?: string;
  connection_id?: string; connection_name?: string; protocol?: string; session_id?: string;
  bytes_in?: number; bytes_out?: number; duration_ms?: number; recording_path?: string; detail?: string;
}
export interface Recording { name: string; size: number; modified: string; encrypted: boolean }
export interface Providers { password: boolean; oidc: { id: string; label: string }[] }
export interface ShareLink { token: string; url: string; expires?: string; read_only?: boolean }

const MESSAGES: Record<string, string> = {
  unauthenticated: 'Please sign in.',
  forbidden: 'You are not allowed to do that.',
  not_found: 'Not found.',
  invalid: 'The request was not valid.',
  csrf: 'Your session is out of date. Reload the page and try again.',
  throttled: 'Too many sign-in attempts. Wait a moment and try again.',
  locked: 'This account is locked after too many failed sign-ins. Try again later or ask an administrator.',
  invalid_credentials: 'Wrong username or password.',
  totp_required: 'Enter the 6-digit code from your authenticator app.',
  conflict: 'That conflicts with existing data.',
  token_expired: 'The link has expired.',
  token_invalid: 'The link is not valid.',
  disabled: 'This account is disabled. Ask an administrator.',
  internal: 'The server had an internal error. Try again later.',
};

export class ApiError extends Error {
  constructor(public status: number, public code: string, message: string) {
    super(message);
  }
}

let csrf = '';
export function setCsrf(token: string): void { csrf = token; }
export function getCsrf(): string { return csrf; }

let onUnauthenticated: (() => void) | null = null;
export function setUnauthenticatedHandler(fn: () => void): void { onUnauthenticated = fn; }

async function request<T>(method: string, path: string, body?: unknown, opts: { quiet401?: boolean } = {}): Promise<T> {
  const headers: Record<string, string> = { Accept: 'application/json' };
  if (csrf) headers['X-CSRF-Token'] = csrf;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let res: Response;
  try {
    res = await fetch(path, {
      method,
      headers,
      credentials: 'same-origin',
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new ApiError(0, 'network', 'The server cannot be reached. Check your connection and try again.');
  }
  if (res.status === 204) return undefined as T;
  const text = await res.text();
  let data: unknown = null;
  if (text) {
    try { data = JSON.parse(text); } catch { data = null; }
  }
  if (!res.ok) {
    const obj = (data && typeof data === 'object' ? data : {}) as { error?: string; code?: string };
    const code = obj.code || String(res.status);
    const message = obj.error || MESSAGES[code] || `Request failed (HTTP ${res.status}).`;
    if (res.status === 401 && code === 'unauthenticated' && !opts.quiet401 && onUnauthenticated) onUnauthenticated();
    throw new ApiError(res.status, code, message);
  }
  return data as T;
}

export function messageFor(code: string): string | undefined { return MESSAGES[code]; }

const enc = encodeURIComponent;

export const api = {
  providers: () => request<Providers>('GET', '/api/auth/providers'),
  login: (username: string, password: string, totp?: string) =>
    request<{ user: User; csrf: string }>('POST', '/api/login', totp ? { username, password, totp } : { username, password }),
  logout: () => request<void>('POST', '/api/logout'),
  me: () => request<{ user: User; csrf: string }>('GET', '/api/me', undefined, { quiet401: true }),
  changePassword: (current: string, next: string) => request<void>('POST', '/api/me/password', { current, new: next }),
  totpBegin: (password: string) => request<TotpEnrolment>('POST', '/api/me/totp', { password }),
  totpConfirm: (code: string) => request<void>('POST', '/api/me/totp/confirm', { code }),
  totpDisable: (password: string) => request<void>('DELETE', '/api/me/totp', { password }),
  resetTotp: (userId: string) => request<void>('DELETE', `/api/admin/users/${enc(userId)}/totp`),

  connections: () => request<ConnectionSummary[]>('GET', '/api/connections'),
  protocols: () => request<ProtocolSpec[]>('GET', '/api/protocols'),

  share: (sessionId: string, readOnly: boolean, ttlSeconds?: number) =>
    request<ShareLink>('POST', `/api/sessions/${enc(sessionId)}/share`,
      ttlSeconds ? { read_only: readOnly, ttl_seconds: ttlSeconds } : { read_only: readOnly }),

  sessions: () => request<LiveSession[]>('GET', '/api/admin/sessions'),
  killSession: (id: string, reason?: string) =>
    request<void>('DELETE', `/api/admin/sessions/${enc(id)}`, reason ? { reason } : {}),

  adminConnections: () => request<Connection[]>('GET', '/api/admin/connections'),
  getConnection: (id: string) => request<Connection>('GET', `/api/admin/connections/${enc(id)}`),
  createConnection: (c: Omit<Connection, 'id'>) => request<Connection>('POST', '/api/admin/connections', { id: '', ...c }),
  updateConnection: (c: Connection) => request<Connection>('PUT', `/api/admin/connections/${enc(c.id)}`, c),
  deleteConnection: (id: string) => request<void>('DELETE', `/api/admin/connections/${enc(id)}`),
  getPermissions: (id: string) => request<{ users: string[]; groups: string[] }>('GET', `/api/admin/connections/${enc(id)}/permissions`),
  setPermissions: (id: string, p: { users: string[]; groups: string[] }) =>
    request<unknown>('PUT', `/api/admin/connections/${enc(id)}/permissions`, p),

  users: () => request<User[]>('GET', '/api/admin/users'),
  getUser: (id: string) => request<User>('GET', `/api/admin/users/${enc(id)}`),
  // `id: ''` keeps servers that require the field happy; the server assigns the id.
  createUser: (u: Partial<User> & { password?: string }) => request<User>('POST', '/api/admin/users', { id: '', ...u }),
  updateUser: (id: string, u: Partial<User> & { password?: string }) => request<User>('PUT', `/api/admin/users/${enc(id)}`, { ...u, id }),
  deleteUser: (id: string) => request<void>('DELETE', `/api/admin/users/${enc(id)}`),

  groups: () => request<Group[]>('GET', '/api/admin/groups'),
  createGroup: (g: { name: string; members: string[] }) => request<Group>('POST', '/api/admin/groups', { id: '', ...g }),
  updateGroup: (g: Group) => request<Group>('PUT', `/api/admin/groups/${enc(g.id)}`, g),
  deleteGroup: (id: string) => request<void>('DELETE', `/api/admin/groups/${enc(id)}`),

  audit: (q: { limit?: number; before?: string; kind?: string; user?: string }) => {
    const p = new URLSearchParams();
    for (const [k, v] of Object.entries(q)) if (v !== undefined && v !== '') p.set(k, String(v));
    return request<AuditEvent[]>('GET', `/api/admin/audit?${p.toString()}`);
  },
  recordings: () => request<Recording[]>('GET', '/api/admin/recordings'),
  recordingKeys: (name: string) => request<{ keys: string }>('GET', `/api/admin/recordings/${enc(name)}/keys`),
  recordingBlob: async (name: string): Promise<Blob> => {
    let res: Response;
    try {
      res = await fetch(`/api/admin/recordings/${enc(name)}`, { credentials: 'same-origin', headers: csrf ? { 'X-CSRF-Token': csrf } : {} });
    } catch {
      throw new ApiError(0, 'network', 'The server cannot be reached.');
    }
    if (!res.ok) {
      let msg = `Cannot load the recording (HTTP ${res.status}).`;
      let code = String(res.status);
      try {
        const j = await res.json() as { error?: string; code?: string };
        if (j.error) msg = j.error;
        if (j.code) code = j.code;
      } catch { /* not JSON */ }
      throw new ApiError(res.status, code, msg);
    }
    return res.blob();
  },
};
