// Configures the certified `oidc-provider` library for the SSO tests; it implements nothing itself.
//
//   node provider.mjs <config.json>
//
// config.json: {issuer, port, clients: [client metadata], keysFile, accountsFile, claimsInUserinfoOnly}
//   keysFile:     {"keys": [private JWKs]}, the provider's signing keys (the first one signs).
//   accountsFile: {"<login>": {claims...}}, read on every lookup so tests can change a user's
//                 claims (groups, username) between logins.
// SIGHUP re-reads keysFile and rebuilds the provider with the new keys (key rotation); the new
// keys are served at the JWKS endpoint once "reloaded" is printed.
// Logins go through the library's own development interaction pages (any password is accepted):
// plain HTML forms that a test drives with HTTP.
import { readFileSync } from 'node:fs';
import http from 'node:http';

import Provider from 'oidc-provider';

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const readJson = (path) => JSON.parse(readFileSync(path, 'utf8'));

function build() {
  const provider = new Provider(config.issuer, {
    clients: config.clients,
    jwks: readJson(config.keysFile),
    cookies: { keys: ['streamspace-test-cookie-key'] },
    claims: {
      openid: ['sub'],
      profile: ['preferred_username', 'name', 'nickname'],
      email: ['email', 'email_verified'],
      groups: ['groups'],
    },
    scopes: ['openid', 'profile', 'email', 'groups', 'offline_access'],
    // Scope claims go into the ID token itself (what Keycloak, Entra ID and Google do), unless the
    // test asks for them at the userinfo endpoint only (what Okta and Authentik do by default).
    conformIdTokenClaims: Boolean(config.claimsInUserinfoOnly),
    features: { devInteractions: { enabled: true }, rpInitiatedLogout: { enabled: true } },
    async findAccount(ctx, id) {
      const account = readJson(config.accountsFile)[id];
      if (!account) return undefined;
      return { accountId: id, async claims() { return { sub: id, ...account }; } };
    },
  });
  return provider.callback();
}

let handler = build();
const server = http.createServer((req, res) => handler(req, res));
server.listen(config.port, '127.0.0.1', () => console.log(`listening ${config.issuer}`));
process.on('SIGHUP', () => {
  handler = build();
  console.log('reloaded');
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
