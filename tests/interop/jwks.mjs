// An identity provider's signing side, for credproxy's JWT caller tests
// (tests/integration/jwt_callers.rs): it holds two RSA keys and a P-256 key, mints tokens
// with jose (an implementation independent of credproxy's verifier), and serves
// a JWK Set that it can change, withhold or fail on command.
//
//   GET  /jwks                      the published keys; counted
//   POST /mint   {kid, claims, as}  a compact JWS of `claims`, signed with `kid`
//                                   (RS256 for the RSA keys, ES256 for the EC one);
//                                   the header names `as` instead when given
//   POST /_test/publish?kids=a,b    publish only these keys
//   POST /_test/fail?on=1|0         answer /jwks with 503
//   GET  /_test/stats               { fetches }
//
// Prints {"url": …} once listening; exits when stdin closes.

import { generateKeyPairSync } from 'node:crypto';
import http from 'node:http';
import { exportJWK, SignJWT } from 'jose';

const keys = {
  a: { alg: 'RS256', pair: generateKeyPairSync('rsa', { modulusLength: 2048 }) },
  b: { alg: 'RS256', pair: generateKeyPairSync('rsa', { modulusLength: 2048 }) },
  c: { alg: 'ES256', pair: generateKeyPairSync('ec', { namedCurve: 'P-256' }) },
};
let published = ['a', 'c'];
let failing = false;
let fetches = 0;

async function jwks() {
  const out = [];
  for (const kid of published) {
    const jwk = await exportJWK(keys[kid].pair.publicKey);
    out.push({ ...jwk, kid, use: 'sig', alg: keys[kid].alg });
  }
  return { keys: out };
}

const send = (res, status, body, type = 'application/json') => {
  res.writeHead(status, { 'content-type': type });
  res.end(typeof body === 'string' ? body : JSON.stringify(body));
};

const server = http.createServer(async (req, res) => {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  const body = Buffer.concat(chunks).toString();
  const url = new URL(req.url, 'http://localhost');
  try {
    if (req.method === 'GET' && url.pathname === '/jwks') {
      fetches += 1;
      if (failing) return send(res, 503, { error: 'unavailable' });
      return send(res, 200, await jwks(), 'application/jwk-set+json');
    }
    if (req.method === 'POST' && url.pathname === '/mint') {
      const { kid, claims, as } = JSON.parse(body);
      const key = keys[kid];
      const token = await new SignJWT(claims)
        .setProtectedHeader({ alg: key.alg, kid: as ?? kid, typ: 'JWT' })
        .sign(key.pair.privateKey);
      return send(res, 200, { token });
    }
    if (req.method === 'POST' && url.pathname === '/_test/publish') {
      published = url.searchParams.get('kids').split(',').filter(Boolean);
      return send(res, 200, { published });
    }
    if (req.method === 'POST' && url.pathname === '/_test/fail') {
      failing = url.searchParams.get('on') === '1';
      return send(res, 200, { failing });
    }
    if (req.method === 'GET' && url.pathname === '/_test/stats') {
      return send(res, 200, { fetches });
    }
    send(res, 404, { error: 'not found' });
  } catch (error) {
    send(res, 500, { error: String(error) });
  }
});

server.listen(0, '127.0.0.1', () => {
  const { port } = server.address();
  console.log(JSON.stringify({ url: `http://127.0.0.1:${port}` }));
});
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
