// Minimal OAuth 2.0 authorization server for credproxy interop tests.
//
// Built on oidc-provider (panva). Listens on 127.0.0.1 with an ephemeral
// port and, once listening, prints exactly one JSON line to stdout:
//
//   {"issuer":"http://127.0.0.1:<port>","token_endpoint":"http://127.0.0.1:<port>/token"}
//
// Everything else (oidc-provider notices/warnings, our own logs) goes to
// stderr. Runs until SIGTERM/SIGINT, then exits 0.
//
// With INTEROP_IDENTITY_DIR set (a directory holding ca.pem, server.pem and
// server-key.pem), it serves HTTPS, asks for client certificates signed by
// that CA, and adds what the identity tests need (identity.mjs): key pairs it
// generates and writes there, clients for every RFC 7523 / RFC 8705 method,
// a JWT-bearer grant, and a Google-style service-account token endpoint.
//
// Install: npm ci --prefix tests/interop
// Start:   node tests/interop/provider.mjs

import { createServer } from 'node:http';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { identity } from './identity.mjs';

// oidc-provider prints its development NOTICEs with console.info, which goes
// to stdout. Keep stdout for the single JSON line only.
const toStderr = (...args) => console.error(...args);
console.log = toStderr;
console.info = toStderr;
console.debug = toStderr;

// Imported after the console redirect so that nothing printed while the
// module loads can reach stdout.
const { default: Provider } = await import('oidc-provider');

const HOST = '127.0.0.1';

const CLIENTS = [
  {
    client_id: 'credproxy-basic',
    client_secret: 'interop-secret-basic',
    token_endpoint_auth_method: 'client_secret_basic',
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
    scope: 'api.read',
  },
  {
    client_id: 'credproxy-post',
    client_secret: 'interop-secret-post',
    token_endpoint_auth_method: 'client_secret_post',
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
    scope: 'api.read',
  },
];

// The issuer must be known before the Provider is built, and the port is only
// known once the server listens: listen first with a placeholder handler,
// then install the provider's handler.
let handler = (req, res) => {
  res.statusCode = 503;
  res.end();
};
const tls = identity.enabled ? identity.serverOptions() : undefined;
const server = tls
  ? (await import('node:https')).createServer(tls, (req, res) => handler(req, res))
  : createServer((req, res) => handler(req, res));

await new Promise((resolve, reject) => {
  server.once('error', reject);
  server.listen(0, HOST, resolve);
});
const { port } = server.address();
const issuer = `${tls ? 'https' : 'http'}://${HOST}:${port}`;
if (identity.enabled) {
  CLIENTS.push(...identity.clients(issuer));
}

// Fresh signing key per run (only needed for the discovery/JWKS documents;
// access tokens are opaque). Avoids oidc-provider's dev-keys fallback.
const signingKey = generateKeyPairSync('rsa', { modulusLength: 2048 })
  .privateKey.export({ format: 'jwk' });

const provider = new Provider(issuer, {
  clients: CLIENTS,
  scopes: ['api.read'],
  ...(identity.enabled ? { clientAuthMethods: identity.clientAuthMethods } : {}),
  features: {
    clientCredentials: { enabled: true },
    // No interactive login flows are used by these clients.
    devInteractions: { enabled: false },
    // Left disabled on purpose: plain
    // grant_type=client_credentials&scope=api.read works without it and
    // yields an opaque access token.
    resourceIndicators: { enabled: false },
    mTLS: identity.enabled ? identity.mtls : { enabled: false },
  },
  ttl: {
    ClientCredentials: 300,
  },
  jwks: { keys: [{ ...signingKey, use: 'sig', kid: 'interop-rs256' }] },
  cookies: { keys: [randomBytes(32).toString('hex')] },
});

// Plain http on loopback: the issuer is http://, and we are not behind a
// reverse proxy, so X-Forwarded-* headers must not be trusted.
provider.proxy = false;

// oidc-provider deliberately treats client_secret_basic and client_secret_post
// as interchangeable for a client registered with either one. For an interop
// test that should catch a client sending its credentials the wrong way, be
// strict: the registered method is the only one accepted. Set
// INTEROP_LENIENT_CLIENT_AUTH=1 to get oidc-provider's stock behaviour.
if (process.env.INTEROP_LENIENT_CLIENT_AUTH !== '1') {
  provider.use(async (ctx, next) => {
    await next();
    const client = ctx.oidc?.client;
    if (ctx.oidc?.route !== 'token' || !client) return;
    const registered = client.tokenEndpointAuthMethod;
    if (registered !== 'client_secret_basic' && registered !== 'client_secret_post') return;
    const usedBasic = ctx.headers.authorization !== undefined;
    const usedPost = !usedBasic && ctx.oidc.params?.client_secret !== undefined;
    if ((registered === 'client_secret_basic' && usedBasic)
      || (registered === 'client_secret_post' && usedPost)) return;
    const used = usedBasic ? 'client_secret_basic' : usedPost ? 'client_secret_post' : 'unknown';
    console.error(`interop provider: rejecting ${client.clientId}: registered ${registered}, used ${used}`);
    ctx.status = 401;
    ctx.set('cache-control', 'no-store');
    ctx.remove('www-authenticate');
    if (usedBasic) {
      ctx.set('www-authenticate', `Basic realm="${issuer}", error="invalid_client", error_description="client authentication failed"`);
    }
    ctx.body = {
      error: 'invalid_client',
      error_description: 'client authentication failed',
    };
  });
}

provider.on('server_error', (ctx, err) => {
  console.error('oidc-provider server_error:', err);
});
provider.on('grant.error', (ctx, err) => {
  console.error(`oidc-provider grant.error: ${err.name}: ${err.message}${err.error_description ? ` (${err.error_description})` : ''}`);
});

if (identity.enabled) {
  identity.registerGrants(provider);
}
const providerHandler = provider.callback();
handler = identity.enabled ? identity.routes(issuer, providerHandler) : providerHandler;

// Take the token endpoint from the provider's own discovery document rather
// than assuming the route.
const discovery = tls
  ? await identity.getJson(`${issuer}/.well-known/openid-configuration`)
  : await (await fetch(`${issuer}/.well-known/openid-configuration`)).json();
if (discovery.issuer !== issuer || typeof discovery.token_endpoint !== 'string') {
  console.error('unexpected discovery document:', discovery);
  process.exit(1);
}

process.stdout.write(`${JSON.stringify({
  issuer: discovery.issuer,
  token_endpoint: discovery.token_endpoint,
})}\n`);
console.error(`interop provider listening on ${issuer}`);

let stopping = false;
function shutdown(signal) {
  if (stopping) return;
  stopping = true;
  if (identity.enabled) identity.close();
  console.error(`interop provider: ${signal}, shutting down`);
  server.close(() => process.exit(0));
  server.closeAllConnections();
  setTimeout(() => process.exit(0), 2000).unref();
}
process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));
