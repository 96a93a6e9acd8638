// What the credproxy identity tests (tests/integration/identity.rs) add to the interop
// provider when INTEROP_IDENTITY_DIR is set: key pairs generated here and
// written to that directory, a client for every RFC 7523 and RFC 8705 client
// authentication method, a JWT-bearer grant (RFC 7523 §2.1) that verifies its
// assertion with jose, a Google-style service-account token endpoint that
// checks the JWT the way Google documents it, and two test routes:
//
//   GET /interop/stats                 tokens issued, per client / issuer
//   GET /interop/assertion?for=client  a fresh ready-made client assertion
//   GET /interop/assertion?for=grant   a fresh ready-made grant assertion
//
// credproxy signs its own assertions; everything here that verifies them is
// independent of credproxy (node:crypto, jose, oidc-provider).

import { generateKeyPairSync, randomBytes, X509Certificate } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import https from 'node:https';

const DIR = process.env.INTEROP_IDENTITY_DIR;
const JWT_BEARER = 'urn:ietf:params:oauth:grant-type:jwt-bearer';
const WORKLOAD_ISSUER = 'credproxy-workload';
const GOOGLE_EMAIL = 'interop-robot@credproxy-test.iam.gserviceaccount.com';
const GOOGLE_KEY_ID = 'interop-google-key-1';
const SJWT_SECRET = 'interop-secret-jwt-0123456789abcdef0123456789abcdef';

const counts = {};
const count = (what) => { counts[what] = (counts[what] ?? 0) + 1; };

function keys() {
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const google = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const wrong = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const write = (name, text) => writeFileSync(join(DIR, name), text, { mode: 0o600 });
  write('rsa-pkcs8.pem', rsa.privateKey.export({ type: 'pkcs8', format: 'pem' }));
  write('rsa-pkcs1.pem', rsa.privateKey.export({ type: 'pkcs1', format: 'pem' }));
  write('ec-pkcs8.pem', ec.privateKey.export({ type: 'pkcs8', format: 'pem' }));
  write('ec-sec1.pem', ec.privateKey.export({ type: 'sec1', format: 'pem' }));
  write('wrong-pkcs8.pem', wrong.privateKey.export({ type: 'pkcs8', format: 'pem' }));
  return { rsa, ec, google, write };
}

const enabled = DIR !== undefined;
const k = enabled ? keys() : undefined;
const jwk = (pair, kid) => ({ ...pair.publicKey.export({ format: 'jwk' }), kid, use: 'sig' });
let tokenEndpoint;
let googleTokenUri;

export const identity = {
  enabled,

  clientAuthMethods: [
    'none', 'client_secret_basic', 'client_secret_post', 'client_secret_jwt',
    'private_key_jwt', 'tls_client_auth',
  ],

  serverOptions() {
    return {
      cert: readFileSync(join(DIR, 'server.pem')),
      key: readFileSync(join(DIR, 'server-key.pem')),
      ca: readFileSync(join(DIR, 'ca.pem')),
      requestCert: true,
      // Verified per client: only tls_client_auth needs a certificate.
      rejectUnauthorized: false,
    };
  },

  clients(issuer) {
    tokenEndpoint = `${issuer}/token`;
    googleTokenUri = `${issuer}/google/token`;
    k.write('google.json', JSON.stringify({
      type: 'service_account',
      project_id: 'credproxy-test',
      private_key_id: GOOGLE_KEY_ID,
      private_key: k.google.privateKey.export({ type: 'pkcs8', format: 'pem' }),
      client_email: GOOGLE_EMAIL,
      client_id: '1234567890',
      token_uri: googleTokenUri,
    }));
    const base = { grant_types: ['client_credentials'], response_types: [], redirect_uris: [], scope: 'api.read' };
    return [
      { ...base, client_id: 'credproxy-pkjwt-rsa', token_endpoint_auth_method: 'private_key_jwt', jwks: { keys: [jwk(k.rsa, 'rsa-1')] } },
      { ...base, client_id: 'credproxy-pkjwt-ec', token_endpoint_auth_method: 'private_key_jwt', jwks: { keys: [jwk(k.ec, 'ec-1')] } },
      { ...base, client_id: 'credproxy-sjwt', token_endpoint_auth_method: 'client_secret_jwt', client_secret: SJWT_SECRET },
      { ...base, client_id: 'credproxy-mtls', token_endpoint_auth_method: 'tls_client_auth', tls_client_auth_subject_dn: 'CN=credproxy-mtls' },
      { ...base, client_id: 'credproxy-assertion', token_endpoint_auth_method: 'private_key_jwt', jwks: { keys: [jwk(k.rsa, 'rsa-1')] } },
      { ...base, client_id: 'credproxy-public', token_endpoint_auth_method: 'none', grant_types: ['client_credentials', JWT_BEARER] },
    ];
  },

  mtls: {
    enabled: true,
    tlsClientAuth: true,
    getCertificate(ctx) {
      const peer = ctx.socket.getPeerCertificate?.();
      return peer && peer.raw ? new X509Certificate(peer.raw) : undefined;
    },
    certificateAuthorized(ctx) {
      return ctx.socket.authorized === true;
    },
    certificateSubjectMatches(ctx, property, expected) {
      const peer = ctx.socket.getPeerCertificate?.();
      const subject = peer && peer.raw ? new X509Certificate(peer.raw).subject : undefined;
      return property === 'tls_client_auth_subject_dn' && subject === expected;
    },
  },

  registerGrants(provider) {
    provider.registerGrantType(JWT_BEARER, async (ctx, next) => {
      const { jwtVerify, decodeJwt } = await import('jose');
      const { errors } = await import('oidc-provider');
      const { assertion } = ctx.oidc.params;
      if (!assertion) throw new errors.InvalidRequest('assertion is missing');
      let payload;
      try {
        if (decodeJwt(assertion).iss !== WORKLOAD_ISSUER) throw new Error('unknown issuer');
        ({ payload } = await jwtVerify(assertion, k.ec.publicKey, {
          issuer: WORKLOAD_ISSUER, audience: tokenEndpoint, algorithms: ['ES256'],
        }));
        if (!payload.sub || !payload.jti || !payload.exp || !payload.iat) throw new Error('claims missing');
      } catch (e) {
        console.error(`interop provider: jwt-bearer assertion refused: ${e.code ?? e.message}`);
        throw new errors.InvalidGrant('the assertion was refused');
      }
      const token = new ctx.oidc.provider.ClientCredentials({
        client: ctx.oidc.client,
        scope: ctx.oidc.params.scope || undefined,
      });
      const value = await token.save();
      count(`jwt-bearer:${payload.sub}`);
      ctx.body = { access_token: value, expires_in: token.expiration, token_type: 'Bearer' };
      await next();
    }, ['assertion', 'scope']);
    provider.on('grant.success', (ctx) => {
      if (ctx.oidc.params.grant_type === 'client_credentials') count(ctx.oidc.client.clientId);
    });
  },

  routes(issuer, providerHandler) {
    return async (req, res) => {
      const url = new URL(req.url, issuer);
      try {
        if (url.pathname === '/interop/stats') return json(res, 200, counts);
        if (url.pathname === '/interop/assertion') return json(res, 200, { assertion: await mint(url.searchParams.get('for')) });
        if (url.pathname === '/google/token' && req.method === 'POST') return await google(req, res);
      } catch (e) {
        console.error('interop provider: test route failed:', e);
        return json(res, 500, { error: 'server_error' });
      }
      return providerHandler(req, res);
    };
  },

  getJson(url) {
    return new Promise((resolve, reject) => {
      https.get(url, { ca: readFileSync(join(DIR, 'ca.pem')) }, (res) => {
        let body = '';
        res.on('data', (chunk) => { body += chunk; });
        res.on('end', () => { try { resolve(JSON.parse(body)); } catch (e) { reject(e); } });
      }).on('error', reject);
    });
  },

  close() {},
};

function json(res, status, body) {
  res.statusCode = status;
  res.setHeader('content-type', 'application/json');
  res.setHeader('cache-control', 'no-store');
  res.end(JSON.stringify(body));
}

/// A ready-made assertion, as a kubelet or a SPIFFE agent would hand one over.
async function mint(kind) {
  const { SignJWT } = await import('jose');
  const now = Math.floor(Date.now() / 1000);
  const jwt = (claims) => new SignJWT(claims).setIssuedAt(now).setExpirationTime(now + 300)
    .setJti(randomBytes(16).toString('base64url')).setAudience(tokenEndpoint);
  if (kind === 'client') {
    return jwt({ iss: 'credproxy-assertion', sub: 'credproxy-assertion' })
      .setProtectedHeader({ alg: 'RS256', kid: 'rsa-1' }).sign(k.rsa.privateKey);
  }
  return jwt({ iss: WORKLOAD_ISSUER, sub: 'workload-1' })
    .setProtectedHeader({ alg: 'ES256' }).sign(k.ec.privateKey);
}

/// Google's OAuth 2.0 server-to-server flow, as documented: an RS256 JWT signed with the
/// service account's key (kid = private_key_id), iss = client_email, scope, aud =
/// token_uri, exp at most an hour after iat.
async function google(req, res) {
  const { jwtVerify } = await import('jose');
  let body = '';
  for await (const chunk of req) body += chunk;
  const form = new URLSearchParams(body);
  if (form.get('grant_type') !== JWT_BEARER) return json(res, 400, { error: 'unsupported_grant_type' });
  try {
    const { payload, protectedHeader } = await jwtVerify(form.get('assertion') ?? '', k.google.publicKey, {
      algorithms: ['RS256'], issuer: GOOGLE_EMAIL, audience: googleTokenUri,
    });
    if (protectedHeader.kid !== GOOGLE_KEY_ID) throw new Error('kid');
    if (typeof payload.scope !== 'string' || payload.scope === '') throw new Error('scope');
    if (payload.exp - payload.iat > 3600) throw new Error('lifetime');
    count(`google:${payload.scope}`);
    return json(res, 200, {
      access_token: `ya29.interop-${randomBytes(12).toString('base64url')}`,
      expires_in: 3599,
      token_type: 'Bearer',
    });
  } catch (e) {
    console.error(`interop provider: google assertion refused: ${e.code ?? e.message}`);
    return json(res, 400, { error: 'invalid_grant', error_description: 'Invalid JWT Signature.' });
  }
}
