// A real OpenID Provider (npm oidc-provider) for tests/integration/test_oidc.sh, on a free
// loopback port: one confidential client (client_secret_basic, PKCE required), one account,
// dev interactions (the test posts the login and consent forms with curl). Prints
// {"issuer": "..."} on stdout once listening; stops on SIGTERM.
// Usage: node provider.js CLIENT_ID CLIENT_SECRET REDIRECT_URI[,REDIRECT_URI...] EMAIL
import http from 'node:http';
import Provider from 'oidc-provider';

const [clientId, clientSecret, redirects, email] = process.argv.slice(2);
if (!email) {
  console.error('usage: node provider.js CLIENT_ID CLIENT_SECRET REDIRECT_URIS EMAIL');
  process.exit(2);
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
  server.on('request', provider.callback());
  console.log(JSON.stringify({ issuer }));
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
