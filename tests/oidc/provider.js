// A real OpenID Provider (npm oidc-provider) for tests/integration/test_oidc.sh, on a free
// loopback port: one confidential client (client_secret_basic, PKCE required), one account,
// dev interactions (the test posts the login and consent forms with curl). Prints
// {"issuer": "..."} on stdout once listening; stops on SIGTERM.
//
// Tampering, for the rejection tests: GET /__test/tamper?mode=MODE (loopback, test-only)
// makes the token endpoint alter the ID token of every later response until set again:
//   none       the provider's own token (default)
//   otherkey   the same claims and kid, signed by a key that is not in the JWKS
//   unknownkid the same claims, signed by a key that is not in the JWKS, under a new kid
//   aud        aud is another client; re-signed with the provider's real key
//   iss        iss is another issuer; re-signed with the provider's real key
//   expired    exp (and iat) an hour in the past; re-signed with the provider's real key
// Usage: node provider.js CLIENT_ID CLIENT_SECRET REDIRECT_URI[,REDIRECT_URI...] EMAIL
import crypto from 'node:crypto';
import http from 'node:http';
import Provider from 'oidc-provider';

const [clientId, clientSecret, redirects, email] = process.argv.slice(2);
if (!email) {
  console.error('usage: node provider.js CLIENT_ID CLIENT_SECRET REDIRECT_URIS EMAIL');
  process.exit(2);
}

// The provider's signing key is ours, so that a tampered token can be re-signed with it.
const KID = 'it-rs256';
const realKey = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
const otherKey = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
const MODES = ['none', 'otherkey', 'unknownkid', 'aud', 'iss', 'expired'];
let mode = 'none';

const b64u = (b) => Buffer.from(b).toString('base64url');
const fromB64u = (s) => JSON.parse(Buffer.from(s, 'base64url').toString('utf8'));
function sign(header, claims, key) {
  const input = `${b64u(JSON.stringify(header))}.${b64u(JSON.stringify(claims))}`;
  const sig = crypto.sign('sha256', Buffer.from(input), key);
  return `${input}.${b64u(sig)}`;
}
function tamper(idToken, issuer) {
  const [h, p] = idToken.split('.');
  const header = fromB64u(h);
  const claims = fromB64u(p);
  const now = Math.floor(Date.now() / 1000);
  switch (mode) {
    case 'otherkey': return sign(header, claims, otherKey);
    case 'unknownkid': return sign({ ...header, kid: 'not-in-the-jwks' }, claims, otherKey);
    case 'aud': return sign(header, { ...claims, aud: 'another-client' }, realKey);
    case 'iss': return sign(header, { ...claims, iss: `${issuer}/another` }, realKey);
    case 'expired':
      return sign(header, { ...claims, iat: now - 7200, exp: now - 3600 }, realKey);
    default: return idToken;
  }
}

// Buffer the token endpoint's JSON answer and swap its id_token (koa ends with one res.end).
function tamperTokenResponse(res, issuer) {
  const end = res.end.bind(res);
  const chunks = [];
  res.write = (c) => { chunks.push(Buffer.from(c)); return true; };
  res.end = (c, ...rest) => {
    if (c && typeof c !== 'function') chunks.push(Buffer.from(c));
    let body = Buffer.concat(chunks).toString('utf8');
    try {
      const j = JSON.parse(body);
      if (typeof j.id_token === 'string') {
        j.id_token = tamper(j.id_token, issuer);
        body = JSON.stringify(j);
      }
    } catch { /* not JSON: an error answer, passed on as is */ }
    if (!res.headersSent) res.setHeader('content-length', Buffer.byteLength(body));
    return end(body);
  };
}

const server = http.createServer();
server.listen(0, '127.0.0.1', () => {
  const issuer = `http://127.0.0.1:${server.address().port}`;
  const provider = new Provider(issuer, {
    clients: [{
      client_id: clientId,
      client_secret: clientSecret,
      redirect_uris: redirects.split(','),
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
    }],
    jwks: { keys: [{ ...realKey.export({ format: 'jwk' }), kid: KID, use: 'sig', alg: 'RS256' }] },
    pkce: { required: () => true },
    features: { devInteractions: { enabled: true } },
    claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name', 'groups'] },
    async findAccount(ctx, sub) {
      return {
        accountId: sub,
        async claims() {
          return { sub, email, email_verified: true, name: `Test ${sub}`, groups: ['tessera-eng'] };
        },
      };
    },
  });
  const handle = provider.callback();
  server.on('request', (req, res) => {
    const url = new URL(req.url, issuer);
    if (url.pathname === '/__test/tamper') {
      const m = url.searchParams.get('mode');
      res.statusCode = MODES.includes(m) ? 204 : 400;
      if (res.statusCode === 204) mode = m;
      res.end();
      return;
    }
    if (mode !== 'none' && req.method === 'POST' && url.pathname === '/token') {
      tamperTokenResponse(res, issuer);
    }
    handle(req, res);
  });
  console.log(JSON.stringify({ issuer }));
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
