// A real OpenID provider for Sluice's tests, on loopback: oidc-provider
// with the device authorization grant (RFC 8628), served over HTTPS with
// the certificate the test made.
//
// Usage: node idp.mjs CERT KEY CLIENT_SECRET
// Prints one line of JSON, {"issuer": "https://127.0.0.1:PORT"}, once it
// listens; it stops when its standard input closes (the test ended).
//
// Accounts: alice (groups ops and db-admins), bob, and carol whose account
// is disabled: the login form refuses her, as an identity provider refuses
// a disabled user, so her device grant ends in access_denied.
//
// The login form at /interaction/UID takes one field, login (the account
// name); consent is given at once, as for a first-party client.
import fs from 'node:fs';
import https from 'node:https';
import Provider from 'oidc-provider';

const [cert, key, secret] = process.argv.slice(2);

const accounts = {
  alice: { email: 'alice@example.org', email_verified: true, preferred_username: 'alice', groups: ['ops', 'db-admins'] },
  bob: { email: 'bob@example.org', email_verified: false, preferred_username: 'bob', groups: [] },
  carol: { email: 'carol@example.org', email_verified: true, preferred_username: 'carol', groups: ['ops'], disabled: true },
};

const server = https.createServer({ cert: fs.readFileSync(cert), key: fs.readFileSync(key) });

server.listen(0, '127.0.0.1', () => {
  const issuer = `https://127.0.0.1:${server.address().port}`;
  const provider = new Provider(issuer, {
    clients: [{
      client_id: 'sluice',
      client_secret: secret,
      grant_types: ['urn:ietf:params:oauth:grant-type:device_code'],
      response_types: [],
      redirect_uris: [],
      token_endpoint_auth_method: 'client_secret_post',
    }, {
      client_id: 'other',
      client_secret: secret,
      grant_types: ['urn:ietf:params:oauth:grant-type:device_code'],
      response_types: [],
      redirect_uris: [],
      token_endpoint_auth_method: 'client_secret_post',
    }],
    features: { deviceFlow: { enabled: true }, devInteractions: { enabled: false } },
    scopes: ['openid', 'email', 'profile', 'groups'],
    claims: {
      openid: ['sub'],
      email: ['email', 'email_verified'],
      profile: ['preferred_username'],
      groups: ['groups'],
    },
    // The claims go in the ID token, which is all Sluice reads.
    conformIdTokenClaims: false,
    cookies: { keys: ['sluice-test-idp'] },
    interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
    findAccount: async (ctx, id) => {
      const a = accounts[id];
      if (!a || a.disabled) {
        return undefined;
      }
      return {
        accountId: id,
        claims: async () => ({ sub: id, email: a.email, email_verified: a.email_verified, preferred_username: a.preferred_username, groups: a.groups }),
      };
    },
  });

  provider.use(async (ctx, next) => {
    const m = ctx.path.match(/^\/interaction\/([^/]+)(\/login)?$/);
    if (!m) {
      return next();
    }
    const details = await provider.interactionDetails(ctx.req, ctx.res);
    if (ctx.method === 'GET' && details.prompt.name === 'login') {
      ctx.type = 'html';
      ctx.body = `<form method="post" action="/interaction/${details.uid}/login"><input name="login"><button>Sign in</button></form>`;
      return undefined;
    }
    let result;
    if (ctx.method === 'POST' && m[2]) {
      const body = await new Promise((resolve) => {
        let s = '';
        ctx.req.on('data', (c) => { s += c; });
        ctx.req.on('end', () => resolve(s));
      });
      const login = new URLSearchParams(body).get('login');
      const a = accounts[login];
      if (!a) {
        ctx.status = 400;
        ctx.body = 'unknown account';
        return undefined;
      }
      result = a.disabled
        ? { error: 'access_denied', error_description: 'account disabled' }
        : { login: { accountId: login } };
    } else if (details.prompt.name === 'consent') {
      const grant = new provider.Grant({ accountId: details.session.accountId, clientId: details.params.client_id });
      grant.addOIDCScope(details.params.scope);
      result = { consent: { grantId: await grant.save() } };
    } else {
      ctx.status = 400;
      ctx.body = `unexpected prompt ${details.prompt.name}`;
      return undefined;
    }
    ctx.status = 303;
    ctx.redirect(await provider.interactionResult(ctx.req, ctx.res, result, { mergeWithLastSubmission: false }));
    return undefined;
  });

  server.on('request', provider.callback());
  process.stdout.write(`${JSON.stringify({ issuer })}\n`);
});

process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
