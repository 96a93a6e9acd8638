// A stand-in for GitHub's REST API, for credproxy's github_app tests
// (tests/integration/github_app.rs). It generates the App's key pair (and a wrong one) into
// GITHUB_KEY_DIR, and verifies every app JWT the way GitHub documents it, with
// jose and the public key only: RS256, `iss` the App id, `iat` not in the
// future, `exp` after now and at most ten minutes after `iat`.
//
//   POST /app/installations/{id}/access_tokens  201 { token, expires_at, … }
//   GET  /repos/{owner}/{repo}                  the API: 200 with a live token, else 401
//   GET  /_test/stats                           token calls, what they carried
//   POST /_test/revoke                          every token issued so far stops working
//   POST /_test/lifetime?seconds=N              tokens issued from now live N seconds
//   POST /_test/delay?ms=N                      token calls answer after N ms
//
// Prints {"url": …} once listening; exits when stdin closes.

import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import { jwtVerify } from 'jose';

const DIR = process.env.GITHUB_KEY_DIR;
const APP_ID = 4242;
const CLIENT_ID = 'Iv23liCredproxyTest';
const INSTALLATION_ID = 99;

const app = generateKeyPairSync('rsa', { modulusLength: 2048 });
const wrong = generateKeyPairSync('rsa', { modulusLength: 2048 });
writeFileSync(join(DIR, 'app.pem'), app.privateKey.export({ type: 'pkcs1', format: 'pem' }), { mode: 0o600 });
writeFileSync(join(DIR, 'wrong.pem'), wrong.privateKey.export({ type: 'pkcs1', format: 'pem' }), { mode: 0o600 });

const live = new Set();
const stats = { token_calls: 0, refused: 0, requests: [], tokens: [], jwts: [] };
let lifetime = 3600;
let delay = 0;

const send = (res, status, body) => {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
};

async function verifyAppJwt(req) {
  const header = req.headers.authorization ?? '';
  if (!header.startsWith('Bearer ')) throw new Error('no bearer');
  const jwt = header.slice('Bearer '.length);
  stats.jwts.push(jwt);
  const { payload, protectedHeader } = await jwtVerify(jwt, app.publicKey, { algorithms: ['RS256'] });
  const now = Math.floor(Date.now() / 1000);
  if (payload.iss !== APP_ID && payload.iss !== CLIENT_ID) throw new Error(`iss ${payload.iss}`);
  if (!(payload.iat <= now)) throw new Error('iat in the future');
  if (!(payload.exp > now && payload.exp - payload.iat <= 600)) throw new Error('exp');
  return { iss: payload.iss, alg: protectedHeader.alg };
}

async function accessTokens(req, res, installation, body) {
  stats.token_calls += 1;
  if (delay > 0) await new Promise((resolve) => setTimeout(resolve, delay));
  let jwt;
  try {
    jwt = await verifyAppJwt(req);
  } catch (error) {
    stats.refused += 1;
    return send(res, 401, { message: 'A JSON web token could not be decoded', documentation_url: 'https://docs.github.com/rest' });
  }
  if (req.headers.accept !== 'application/vnd.github+json' || !req.headers['x-github-api-version'] || !req.headers['user-agent']) {
    stats.refused += 1;
    return send(res, 400, { message: 'missing headers' });
  }
  if (installation !== INSTALLATION_ID) return send(res, 404, { message: 'Not Found' });
  const token = `ghs_${randomBytes(18).toString('hex')}`;
  live.add(token);
  stats.tokens.push(token);
  stats.requests.push({ iss: jwt.iss, alg: jwt.alg, body: body.length ? JSON.parse(body) : null, user_agent: req.headers['user-agent'] });
  const expires_at = new Date(Date.now() + lifetime * 1000).toISOString();
  send(res, 201, { token, expires_at, permissions: { contents: 'read' }, repository_selection: 'selected' });
}

const server = http.createServer(async (req, res) => {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  const body = Buffer.concat(chunks).toString();
  const url = new URL(req.url, 'http://localhost');
  const tokenCall = url.pathname.match(/^\/app\/installations\/(\d+)\/access_tokens$/);
  if (req.method === 'POST' && tokenCall) return accessTokens(req, res, Number(tokenCall[1]), body);
  if (url.pathname === '/_test/stats') return send(res, 200, stats);
  if (url.pathname === '/_test/revoke') { live.clear(); return send(res, 200, {}); }
  if (url.pathname === '/_test/lifetime') { lifetime = Number(url.searchParams.get('seconds')); return send(res, 200, {}); }
  if (url.pathname === '/_test/delay') { delay = Number(url.searchParams.get('ms')); return send(res, 200, {}); }
  const repo = url.pathname.match(/^\/repos\/([^/]+)\/([^/]+)$/);
  if (req.method === 'GET' && repo) {
    const token = (req.headers.authorization ?? '').replace(/^Bearer /, '');
    if (!live.has(token)) return send(res, 401, { message: 'Bad credentials' });
    return send(res, 200, { full_name: `${repo[1]}/${repo[2]}`, private: true });
  }
  send(res, 404, { message: 'Not Found' });
});

server.listen(0, '127.0.0.1', () => {
  const { port } = server.address();
  console.log(JSON.stringify({ url: `http://127.0.0.1:${port}`, app_id: APP_ID, client_id: CLIENT_ID, installation_id: INSTALLATION_ID }));
});
process.stdin.resume();
process.stdin.on('end', () => process.exit(0));
