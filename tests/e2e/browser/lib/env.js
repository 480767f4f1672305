'use strict';
// Server under test (OV_URL / OV_SECRET, set by run.sh) and its REST API.
const { OV_URL, OV_SECRET, basicAuth, uniqueId, raw } = require('../../lib/rest');

// Media tests (publish/subscribe, decoded frames) run only with E2E_MEDIA=1.
const MEDIA = process.env.E2E_MEDIA === '1';

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
