'use strict';
// Server under test (OV_URL / OV_SECRET, set by run.sh) and its REST API.
const https = require('node:https');
const crypto = require('node:crypto');

const OV_URL = process.env.OV_URL;
const OV_SECRET = process.env.OV_SECRET;
if (!OV_URL || !OV_SECRET) {
  throw new Error('OV_URL and OV_SECRET must be set (use tests/e2e/browser/run.sh)');
}
// Media tests (publish/subscribe, decoded frames) run only with E2E_MEDIA=1.
const MEDIA = process.env.E2E_MEDIA === '1';

function basicAuth(secret = OV_SECRET) {
  return 'Basic ' + Buffer.from('OPENVIDUAPP:' + secret).toString('base64');
}

function uniqueId(prefix) {
  return `${prefix}-${crypto.randomBytes(5).toString('hex')}`;
}

// HTTPS request to the server (self-signed certificate accepted). Resolves to { status, headers, text, json() }.
function raw(method, path, { body, auth = true, headers = {} } = {}) {
  const url = new URL(path, OV_URL);
  const h = { ...headers };
  if (auth) h.Authorization = basicAuth();
  let payload;
  if (body !== undefined) {
    payload = typeof body === 'string' ? body : JSON.stringify(body);
    h['Content-Type'] = h['Content-Type'] || 'application/json';
    h['Content-Length'] = Buffer.byteLength(payload);
  }
  return new Promise((resolve, reject) => {
    const req = https.request(url, { method, headers: h, rejectUnauthorized: false, timeout: 10000 }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        resolve({ status: res.statusCode, headers: res.headers, text, json: () => JSON.parse(text) });
      });
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${path}: timed out`)));
    req.on('error', reject);
    if (payload !== undefined) req.write(payload);
    req.end();
  });
}

async function expectStatus(res, code, what) {
  if (res.status !== code) throw new Error(`${what}: HTTP ${res.status} (expected ${code}): ${res.text}`);
  return res;
}

// POST /openvidu/api/sessions; resolves to the session id.
async function createSession(customSessionId) {
  const body = customSessionId ? { customSessionId } : {};
  const res = await expectStatus(await raw('POST', '/openvidu/api/sessions', { body }), 200, 'create session');
  return res.json().id;
}

// POST /openvidu/api/sessions/{id}/connection; resolves to { token, connectionId }.
async function createToken(sessionId, props = {}) {
  const res = await expectStatus(
    await raw('POST', `/openvidu/api/sessions/${encodeURIComponent(sessionId)}/connection`, { body: props }),
    200, 'create connection');
  const c = res.json();
  return { token: c.token, connectionId: c.id };
}

// GET /openvidu/api/sessions/{id}; resolves to the parsed session, or null on 404.
async function getSession(sessionId) {
  const res = await raw('GET', `/openvidu/api/sessions/${encodeURIComponent(sessionId)}`);
  if (res.status === 404) return null;
  await expectStatus(res, 200, 'get session');
  return res.json();
}

async function getConnection(sessionId, connectionId) {
  const res = await raw('GET',
    `/openvidu/api/sessions/${encodeURIComponent(sessionId)}/connection/${encodeURIComponent(connectionId)}`);
  if (res.status === 404) return null;
  await expectStatus(res, 200, 'get connection');
  return res.json();
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Polls `fn` until it returns a truthy value; throws with `what` (and the last value) after `timeout` ms.
async function until(what, fn, { timeout = 10000, interval = 100 } = {}) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    last = await fn();
    if (last) return last;
    if (Date.now() >= deadline) {
      throw new Error(`timed out after ${timeout} ms waiting for ${what}` +
        (last !== undefined ? ` (last value: ${JSON.stringify(last)})` : ''));
    }
    await sleep(interval);
  }
}

module.exports = {
  OV_URL, OV_SECRET, MEDIA, basicAuth, uniqueId, raw, createSession, createToken, getSession, getConnection,
  sleep, until,
};
