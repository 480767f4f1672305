'use strict';
// Connections and tokens through the real openvidu-node-client 2.20.2 (spec §1.3.2, §1.4, §5.2).
const { test } = require('node:test');
const assert = require('node:assert/strict');
const { CONNECTION_ID_RE, newOV, tokenRe, raw, status } = require('../lib/env');

test('createConnection returns a pending Connection with its token and echoed properties', async () => {
  const session = await newOV().createSession();
  const kurentoOptions = { videoMaxRecvBandwidth: 1000, allowedFilters: ['GStreamerFilter'] };
  const conn = await session.createConnection({
    role: 'MODERATOR', data: 'user-data', record: true, kurentoOptions,
  });

  assert.equal(conn.status, 'pending');
  assert.match(conn.connectionId, CONNECTION_ID_RE);
  assert.ok(conn.token.startsWith('wss://'));
  assert.match(conn.token, tokenRe(session.sessionId));
  assert.ok(conn.token.includes(`sessionId=${session.sessionId}&token=tok_`));
  assert.equal(typeof conn.createdAt, 'number');
  // Pending connection: these members exist and are null (2.20 added `ip`).
  for (const key of ['ip', 'activeAt', 'location', 'platform', 'clientData']) {
    assert.ok(key in conn, `connection has '${key}'`);
    assert.equal(conn[key], null, `pending connection '${key}' is null`);
  }
  assert.deepEqual(conn.publishers, []);
  assert.deepEqual(conn.subscribers, []);

  const props = conn.connectionProperties;
  assert.equal(props.type, 'WEBRTC');
  assert.equal(props.role, 'MODERATOR');
  assert.equal(props.data, 'user-data');
  assert.equal(props.record, true);
  assert.deepEqual(props.kurentoOptions, kurentoOptions);
  assert.equal(conn.role, 'MODERATOR');
  assert.equal(conn.serverData, 'user-data');

  assert.ok(session.connections.some((c) => c.connectionId === conn.connectionId));
  await session.close();
});

test('createConnection without properties uses the defaults', async () => {
  const session = await newOV().createSession();
  const conn = await session.createConnection();
  assert.equal(conn.status, 'pending');
  assert.equal(conn.connectionProperties.role, 'PUBLISHER');
  assert.equal(conn.connectionProperties.data, '');
  assert.equal(conn.connectionProperties.type, 'WEBRTC');
  assert.match(conn.token, tokenRe(session.sessionId));
  await session.close();
});

test('token host is the server itself (OPENVIDU_PUBLICURL with the bound port)', async () => {
  const session = await newOV().createSession();
  const conn = await session.createConnection();
  const expected = new URL(process.env.OV_URL).host;
  assert.equal(new URL(conn.token).host, expected);
  await session.close();
});

test('legacy generateToken returns a token string', async () => {
  const session = await newOV().createSession();
  const token = await session.generateToken({ role: 'SUBSCRIBER', data: 'x' });
  assert.equal(typeof token, 'string');
  assert.match(token, tokenRe(session.sessionId));
  await session.close();
});

test('session.fetch() lists pending connections', async () => {
  const session = await newOV().createSession();
  const c1 = await session.createConnection({ role: 'PUBLISHER', data: 'one' });
  const t2 = await session.generateToken({ role: 'SUBSCRIBER', data: 'two' });

  assert.equal(await session.fetch(), true); // the token's connection is new to the local cache
  assert.equal(session.connections.length, 2);
  assert.ok(session.connections.every((c) => c.status === 'pending'));
  assert.deepEqual(session.activeConnections, []);
  const fetched2 = session.connections.find((c) => c.token === t2);
  assert.ok(fetched2, 'connection of the generated token is listed');
  assert.match(fetched2.connectionId, CONNECTION_ID_RE);
  assert.equal(fetched2.connectionProperties.role, 'SUBSCRIBER');
  assert.equal(fetched2.connectionProperties.data, 'two');
  assert.ok(session.connections.some((c) => c.connectionId === c1.connectionId && c.token === c1.token));
  assert.equal(await session.fetch(), false);

  // A second client sees the same pending connections through openvidu.fetch().
  const other = newOV();
  await other.fetch();
  const seen = other.activeSessions.find((s) => s.sessionId === session.sessionId);
  assert.ok(seen);
  assert.deepEqual(seen.connections.map((c) => c.connectionId).sort(),
    session.connections.map((c) => c.connectionId).sort());
  await session.close();
});

test('forceDisconnect of a pending connection invalidates it; a second one gives 404', async () => {
  const session = await newOV().createSession();
  const conn = await session.createConnection();
  const keep = await session.createConnection();

  await session.forceDisconnect(conn);
  assert.ok(!session.connections.some((c) => c.connectionId === conn.connectionId));
  await session.fetch();
  assert.deepEqual(session.connections.map((c) => c.connectionId), [keep.connectionId]);

  const res = await raw('GET', `/openvidu/api/sessions/${session.sessionId}/connection`);
  assert.equal(res.status, 200);
  assert.ok(!res.json().content.some((c) => c.connectionId === conn.connectionId));

  await assert.rejects(session.forceDisconnect(conn.connectionId), status(404));
  await session.close();
});
