'use strict';
// Recording REST errors through the real openvidu-node-client 2.20.2 (spec §1.4; server runs with OPENVIDU_RECORDING=true).
const { test } = require('node:test');
const assert = require('node:assert/strict');
const { newOV, status } = require('../lib/env');

test('startRecording of a session nobody joined rejects with 406', async () => {
  const ov = newOV();
  const session = await ov.createSession();
  await assert.rejects(ov.startRecording(session.sessionId), status(406));
  assert.equal(session.recording, false);
  await session.close();
});

test('startRecording of an unknown session rejects with 404', async () => {
  await assert.rejects(newOV().startRecording('no_such_session_e2e'), status(404));
});

test('getRecording / stopRecording / deleteRecording of an unknown id reject with 404', async () => {
  const ov = newOV();
  await assert.rejects(ov.getRecording('nope'), status(404));
  await assert.rejects(ov.stopRecording('nope'), status(404));
  await assert.rejects(ov.deleteRecording('nope'), status(404));
});

test('listRecordings resolves to an array', async () => {
  const list = await newOV().listRecordings();
  assert.ok(Array.isArray(list));
});
