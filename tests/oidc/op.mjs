// A certified OpenID provider (panva/node-oidc-provider) on loopback, for varco's tests and the
// demo: one static client per entry of the clients file, PKCE required, signed request objects
// and the claims parameter supported, SPID acr values, RP-initiated and back-channel logout.
//
// The login and consent screens are replaced by an automatic one: the next login is "Mario
// Rossi" at the acr asked first, unless GET /test/next sets what the next one does
// (?acr=..., ?error=access_denied, ?account=...). Its calls to clients (back-channel logout)
// reach `*.localhost` hosts on loopback (its SSRF guard would refuse them), and
// GET /test/last-logout-token shows the last logout token it sent. Those are the only
// non-standard parts.
//
// Usage: node op.mjs <port> <clients.json>   (prints "ready <issuer>" when it listens)
import { readFileSync } from 'node:fs';
import { request } from 'node:http';
import { generateKeyPair, exportJWK } from 'jose';
import Provider from 'oidc-provider';

const [port, clientsFile] = process.argv.slice(2);
const issuer = `http://127.0.0.1:${port}`;
const clients = JSON.parse(readFileSync(clientsFile, 'utf8'));

const SPID = ['https://www.spid.gov.it/SpidL1', 'https://www.spid.gov.it/SpidL2', 'https://www.spid.gov.it/SpidL3'];
const FISCAL = 'https://attributes.eid.gov.it/fiscal_number';
const accounts = {
  mario: { given_name: 'Mario', family_name: 'Rossi', email: 'mario.rossi@example.it', [FISCAL]: 'TINIT-RSSMRA80A01H501U' },
  anna: { given_name: 'Anna', family_name: 'Bianchi', email: 'anna.bianchi@example.it', [FISCAL]: 'TINIT-BNCNNA85M41G702S' },
};
let next = {};
let lastLogoutToken = null;

// A client on `*.localhost` (varco in the tests) is on this machine: reached on 127.0.0.1 with
// its own Host header, over node:http (fetch cannot set Host).
function loopbackFetch(url, options) {
  const u = new URL(url);
  if (!u.hostname.endsWith('.localhost')) return globalThis.fetch(url, options);
  const body = options.body ? String(options.body) : '';
  if (body.startsWith('logout_token=')) lastLogoutToken = new URLSearchParams(body).get('logout_token');
  const headers = Object.fromEntries(new Headers(options.headers));
  headers.host = u.host;
  headers['content-length'] = Buffer.byteLength(body);
  return new Promise((resolve, reject) => {
    const r = request({ host: '127.0.0.1', port: u.port || 80, path: u.pathname + u.search, method: options.method ?? 'GET', headers }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve(new Response(res.statusCode === 204 ? null : Buffer.concat(chunks), { status: res.statusCode })));
    });
    r.on('error', reject);
    r.end(body);
  });
}

const { privateKey } = await generateKeyPair('RS256', { extractable: true });
const signing = { ...(await exportJWK(privateKey)), kid: `op-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`, alg: 'RS256', use: 'sig' };

const provider = new Provider(issuer, {
  clients,
  jwks: { keys: [signing] },
  acrValues: SPID,
  claims: {
    openid: ['sub'],
    profile: ['given_name', 'family_name'],
    email: ['email'],
    fiscal_number: [FISCAL],
    acr: null,
    sid: null,
  },
  scopes: ['openid', 'profile', 'email', 'fiscal_number', 'offline_access'],
  features: {
    devInteractions: { enabled: false },
    claimsParameter: { enabled: true },
    requestObjects: { enabled: true },
    rpInitiatedLogout: { enabled: true },
    backchannelLogout: { enabled: true },
  },
  pkce: { required: () => true },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  async findAccount(ctx, id) {
    if (!accounts[id]) return undefined;
    return { accountId: id, claims: async () => ({ sub: id, ...accounts[id] }) };
  },
  cookies: { keys: ['varco-test-op-cookie-key'] },
  fetch: loopbackFetch,
});
provider.proxy = false;

provider.use(async (ctx, nextMiddleware) => {
  if (ctx.path === '/test/last-logout-token') {
    ctx.body = { logout_token: lastLogoutToken };
    return;
  }
  if (ctx.path === '/test/next') {
    next = Object.fromEntries(new URLSearchParams(ctx.querystring));
    ctx.body = { next };
    return;
  }
  const m = ctx.path.match(/^\/interaction\/([^/]+)$/);
  if (!m) return nextMiddleware();
  const details = await provider.interactionDetails(ctx.req, ctx.res);
  const { params } = details;
  const set = next;
  next = {};
  if (set.error) {
    await provider.interactionFinished(ctx.req, ctx.res, { error: set.error, error_description: 'refused in the test' }, { mergeWithLastSubmission: false });
    return;
  }
  const accountId = set.account ?? 'mario';
  const grant = new provider.Grant({ accountId, clientId: params.client_id });
  grant.addOIDCScope(params.scope);
  const asked = params.claims ? JSON.parse(params.claims) : {};
  grant.addOIDCClaims([...Object.keys(asked.userinfo ?? {}), ...Object.keys(asked.id_token ?? {})]);
  const grantId = await grant.save();
  const acr = set.acr ?? String(params.acr_values ?? SPID[0]).split(' ')[0];
  await provider.interactionFinished(ctx.req, ctx.res, { login: { accountId, acr }, consent: { grantId } }, { mergeWithLastSubmission: false });
});

provider.listen(Number(port), '127.0.0.1', () => console.log(`ready ${issuer}`));
