// A small OpenID Connect provider for the web tests (authorization code + PKCE S256,
// RS256 ID tokens, discovery and JWKS). It signs in whoever `nextUser` names without a
// login form, or refuses the next attempt when `denyNext` is set.
import crypto from 'node:crypto';
import http from 'node:http';

export class OidcProvider {
  static async start({ clientId, clientSecret }) {
    const p = new OidcProvider(clientId, clientSecret);
    await new Promise((resolve) => p.server.listen(0, '127.0.0.1', resolve));
    p.issuer = `http://127.0.0.1:${p.server.address().port}`;
    return p;
  }

  constructor(clientId, clientSecret) {
    this.clientId = clientId;
    this.clientSecret = clientSecret;
    this.codes = new Map();
    this.nextUser = { sub: 'oidc-1', preferred_username: 'olivia', name: 'Olivia OIDC' };
    this.denyNext = false;
    this.tokenRequests = 0;
    const { publicKey, privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
    this.privateKey = privateKey;
    this.kid = crypto.randomBytes(8).toString('hex');
    this.jwk = { ...publicKey.export({ format: 'jwk' }), kid: this.kid, alg: 'RS256', use: 'sig' };
    this.server = http.createServer((req, res) => this.#handle(req, res).catch((e) => {
      res.writeHead(500, { 'content-type': 'text/plain' });
      res.end(String(e));
    }));
  }

  #json(res, status, obj) {
    res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
    res.end(JSON.stringify(obj));
  }

  async #handle(req, res) {
    const url = new URL(req.url, this.issuer);
    if (url.pathname === '/.well-known/openid-configuration') {
      return this.#json(res, 200, {
        issuer: this.issuer,
        authorization_endpoint: `${this.issuer}/authorize`,
        token_endpoint: `${this.issuer}/token`,
        jwks_uri: `${this.issuer}/jwks`,
        response_types_supported: ['code'],
        subject_types_supported: ['public'],
        id_token_signing_alg_values_supported: ['RS256'],
        code_challenge_methods_supported: ['S256'],
      });
    }
    if (url.pathname === '/jwks') return this.#json(res, 200, { keys: [this.jwk] });
    if (url.pathname === '/authorize') {
      const q = url.searchParams;
      const redirect = new URL(q.get('redirect_uri'));
      redirect.searchParams.set('state', q.get('state') || '');
      if (q.get('client_id') !== this.clientId || q.get('response_type') !== 'code' ||
          q.get('code_challenge_method') !== 'S256' || !q.get('code_challenge')) {
        redirect.searchParams.set('error', 'invalid_request');
        redirect.searchParams.set('error_description', 'bad authorization request');
      } else if (this.denyNext) {
        this.denyNext = false;
        redirect.searchParams.set('error', 'access_denied');
        redirect.searchParams.set('error_description', 'The user <b>declined</b>');
      } else {
        const code = crypto.randomBytes(16).toString('base64url');
        this.codes.set(code, { challenge: q.get('code_challenge'), nonce: q.get('nonce'), redirectUri: q.get('redirect_uri'), user: this.nextUser });
        redirect.searchParams.set('code', code);
      }
      res.writeHead(302, { location: redirect.toString() });
      return res.end();
    }
    if (url.pathname === '/token' && req.method === 'POST') {
      this.tokenRequests++;
      let body = '';
      for await (const chunk of req) body += chunk;
      const f = new URLSearchParams(body);
      let id = f.get('client_id');
      let secret = f.get('client_secret');
      const auth = req.headers.authorization || '';
      if (auth.startsWith('Basic ')) {
        [id, secret] = Buffer.from(auth.slice(6), 'base64').toString().split(':').map(decodeURIComponent);
      }
      const entry = this.codes.get(f.get('code') || '');
      this.codes.delete(f.get('code') || '');
      const verifier = f.get('code_verifier') || '';
      const challenge = crypto.createHash('sha256').update(verifier).digest('base64url');
      if (id !== this.clientId || secret !== this.clientSecret) return this.#json(res, 401, { error: 'invalid_client' });
      if (!entry || f.get('grant_type') !== 'authorization_code' || f.get('redirect_uri') !== entry.redirectUri) return this.#json(res, 400, { error: 'invalid_grant' });
      if (challenge !== entry.challenge) return this.#json(res, 400, { error: 'invalid_grant', error_description: 'PKCE verification failed' });
      const now = Math.floor(Date.now() / 1000);
      const claims = { iss: this.issuer, aud: this.clientId, iat: now, exp: now + 300, nonce: entry.nonce, ...entry.user };
      const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
      const data = `${b64({ alg: 'RS256', typ: 'JWT', kid: this.kid })}.${b64(claims)}`;
      const sig = crypto.sign('sha256', Buffer.from(data), this.privateKey).toString('base64url');
      return this.#json(res, 200, { access_token: crypto.randomBytes(16).toString('hex'), token_type: 'Bearer', expires_in: 300, id_token: `${data}.${sig}` });
    }
    res.writeHead(404);
    res.end();
  }

  async stop() {
    await new Promise((resolve) => this.server.close(resolve));
  }
}
