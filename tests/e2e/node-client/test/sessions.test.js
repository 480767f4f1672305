'use strict';
// Sessions through the real openvidu-node-client 2.20.2 (spec §1.4, §5.2).
const { test } = require('node:test');
const assert = require('node:assert/strict');
const { SESSION_ID_RE, newOV, uniqueId, raw, status } = require('../lib/env');

test('createSession without properties generates a ses_ id', async () => {
  const ov = newOV();
  const session = await ov.createSession();
  assert.match(session.sessionId, SESSION_ID_RE);
  assert.equal(typeof session.createdAt, 'number');
  assert.ok(session.createdAt > 0);
  assert.equal(session.properties.mediaMode, 'ROUTED');
  assert.equal(session.properties.recordingMode, 'MANUAL');
  assert.ok(ov.activeSessions.includes(session));
  await session.close();
});

test('createSession with a customSessionId uses it verbatim', async () => {
  const id = uniqueId('Room_e2e');
  const session = await newOV().createSession({ customSessionId: id });
  assert.equal(session.sessionId, id);
  assert.equal(session.properties.customSessionId, id);
  await session.close();
});

test('duplicate customSessionId: server answers 409, the SDK adopts the id', async () => {
  const id = uniqueId('dup');
  const first = await newOV().createSession({ customSessionId: id });

  const res = await raw('POST', '/openvidu/api/sessions', { body: { customSessionId: id } });
  assert.equal(res.status, 409);

  const ov = newOV();
  const second = await ov.createSession({ customSessionId: id });
  assert.equal(second.sessionId, id);
  assert.ok(ov.activeSessions.some((s) => s.sessionId === id));
  await first.close();
});

test('invalid customSessionId rejects with 400', async () => {
  await assert.rejects(newOV().createSession({ customSessionId: 'bad id!' }), status(400));
});

test('openvidu.fetch() picks up sessions created by another client, then reports no change', async () => {
  const watcher = newOV();
  await watcher.fetch();
  const session = await newOV().createSession();

  assert.equal(await watcher.fetch(), true);
  assert.ok(watcher.activeSessions.some((s) => s.sessionId === session.sessionId));
  assert.equal(await watcher.fetch(), false);
  await session.close();
});

test('session.close() resolves; afterwards the session is gone (404)', async () => {
  const ov = newOV();
  const session = await ov.createSession();
  const watcher = newOV();
  await watcher.fetch();
  assert.ok(watcher.activeSessions.some((s) => s.sessionId === session.sessionId));

  await session.close();
  assert.ok(!ov.activeSessions.some((s) => s.sessionId === session.sessionId));
  await assert.rejects(session.fetch(), status(404));
  await assert.rejects(session.close(), status(404));
  assert.equal((await raw('GET', `/openvidu/api/sessions/${session.sessionId}`)).status, 404);

  assert.equal(await watcher.fetch(), true);
  assert.ok(!watcher.activeSessions.some((s) => s.sessionId === session.sessionId));
});
