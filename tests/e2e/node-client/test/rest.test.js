'use strict';
// Auth, signals and config (spec §1.1, §1.4). openvidu-node-client 2.20.2 has no signal method,
// so signals and header checks use raw HTTPS requests.
const { test } = require('node:test');
const assert = require('node:assert/strict');
const { OV_URL, newOV, raw, status, sameUrl } = require('../lib/env');

test('wrong secret: createSession rejects with 401', async () => {
  await assert.rejects(newOV('wrong-secret').createSession(), status(401));
});

test('401 responses carry a WWW-Authenticate: Basic challenge', async () => {
  for (const auth of ['wrong-secret', false]) {
    const res = await raw('GET', '/openvidu/api/sessions', { auth });
    assert.equal(res.status, 401);
    assert.match(String(res.headers['www-authenticate']), /^Basic\b/i);
  }
});

test('signal to a session nobody joined gives 406, to an unknown session 404', async () => {
  const session = await newOV().createSession();
  const body = { session: session.sessionId, type: 'chat', data: 'hello' };
  assert.equal((await raw('POST', '/openvidu/api/signal', { body })).status, 406);
  assert.equal((await raw('POST', '/openvidu/api/signal', { body: { ...body, session: 'no_such_session_e2e' } })).status, 404);
  await session.close();
});

test('GET /openvidu/api/config returns the configuration JSON', async () => {
  const res = await raw('GET', '/openvidu/api/config');
  assert.equal(res.status, 200);
  assert.match(String(res.headers['content-type']), /application\/json/);
  const cfg = res.json();
  assert.equal(typeof cfg.VERSION, 'string');
  assert.match(cfg.VERSION, /^\d+\.\d+\.\d+/);
  assert.ok(sameUrl(cfg.OPENVIDU_PUBLICURL, OV_URL), `OPENVIDU_PUBLICURL ${cfg.OPENVIDU_PUBLICURL} is ${OV_URL}`);
  assert.equal(cfg.OPENVIDU_RECORDING, true);
});

test('GET /openvidu/api/config/openvidu-publicurl works without auth', async () => {
  const res = await raw('GET', '/openvidu/api/config/openvidu-publicurl', { auth: false });
  assert.equal(res.status, 200);
  assert.ok(sameUrl(res.text, OV_URL), `public url ${res.text} is ${OV_URL}`);
});
