'use strict';
// openvidu-browser 2.20.0 in Chromium against openvidu-rs: signalling only (no media), spec §2.
const { test } = require('node:test');
const assert = require('node:assert/strict');
const { createSession, createToken, getSession, getConnection, raw, until, sleep } = require('../lib/env');
const { withBrowser } = require('../lib/browser');

// Two participants A and B joined to a new session. Resolves to { sessionId, a, b, infoA, infoB }.
async function joinTwo(env, { dataA = 'alice-data', dataB = 'bob-data' } = {}) {
  const sessionId = await createSession();
  const [tokA, tokB] = [await createToken(sessionId), await createToken(sessionId)];
  const a = await env.newClient('A');
  const b = await env.newClient('B');
  const infoA = await a.join(tokA.token, dataA);
  const infoB = await b.join(tokB.token, dataB);
  assert.equal(infoA.connectionId, tokA.connectionId, 'A joined as the connection its token belongs to');
  assert.equal(infoB.connectionId, tokB.connectionId, 'B joined as the connection its token belongs to');
  // A learns of B by a notification: a test that drops A's socket next must not race it.
  await a.waitEvent('connectionCreated', { connectionId: infoB.connectionId });
  return { sessionId, a, b, infoA, infoB };
}

test('two browsers connect to one session and see each other', async (t) => {
  await withBrowser(t, async (env) => {
    const { sessionId, a, b, infoA, infoB } = await joinTwo(env);

    // joinRoom result as the library understood it.
    assert.equal(infoA.sessionId, sessionId);
    assert.equal(infoA.role, 'PUBLISHER');
    assert.equal(infoA.mediaServer, 'kurento', 'mediaServer drives the subscribe negotiation (client offers)');
    assert.ok(infoA.rpcSessionId, 'joinRoom result carries the JSON-RPC sessionId (used by reconnection)');
    assert.notEqual(infoA.rpcSessionId, infoB.rpcSessionId);
    assert.deepEqual(infoA.capabilities, { subscribe: true, publish: true, forceUnpublish: false, forceDisconnect: false });

    // Each one sees its own connection and the other's.
    const selfA = await a.waitEvent('connectionCreated', { connectionId: infoA.connectionId });
    assert.equal(selfA.local, true);
    assert.equal(selfA.data, 'alice-data');
    const bSeenByA = await a.waitEvent('connectionCreated', { connectionId: infoB.connectionId }); // participantJoined
    assert.equal(bSeenByA.data, 'bob-data');
    assert.equal(bSeenByA.local, false);
    const aSeenByB = await b.waitEvent('connectionCreated', { connectionId: infoA.connectionId }); // joinRoom `value`
    assert.equal(aSeenByB.data, 'alice-data');
    assert.equal(aSeenByB.local, false);

    // Wire: joinRoom parameters the browser sent.
    const join = a.requests('joinRoom')[0];
    assert.ok(join, 'A sent joinRoom');
    assert.equal(join.params.session, sessionId);
    assert.equal(join.params.metadata, 'alice-data');
    assert.equal(typeof join.params.platform, 'string');
    assert.match(join.params.platform, /Chrome/);
    assert.equal(a.responseTo(join).result.id, infoA.connectionId);

    // REST view: both active, seen from 127.0.0.1, with the platform string the browser sent.
    const s = await getSession(sessionId);
    assert.equal(s.connections.numberOfElements, 2);
    const byId = new Map(s.connections.content.map((c) => [c.connectionId, c]));
    for (const [client, info, data] of [[a, infoA, 'alice-data'], [b, infoB, 'bob-data']]) {
      const c = byId.get(info.connectionId);
      assert.ok(c, `REST lists ${info.connectionId}`);
      assert.equal(c.status, 'active');
      assert.equal(c.ip, '127.0.0.1');
      assert.equal(c.platform, client.requests('joinRoom')[0].params.platform);
      assert.equal(c.clientData, data);
      assert.equal(typeof c.activeAt, 'number');
      assert.deepEqual(c.publishers, []);
      assert.deepEqual(c.subscribers, []);
    }

    // Heartbeat: the first ping carries the interval and is answered "pong".
    await until('a ping answer', () => {
      const p = a.requests('ping')[0];
      return p && a.responseTo(p);
    }, { timeout: 7000 });
    const ping = a.requests('ping')[0];
    assert.deepEqual(ping.params, { interval: 5000 });
    assert.equal(a.responseTo(ping).result.value, 'pong');
  });
});

test('a signal to one connection reaches only that browser, a broadcast reaches both', async (t) => {
  await withBrowser(t, async (env) => {
    const { a, b, infoA, infoB } = await joinTwo(env);
    await a.waitEvent('connectionCreated', { connectionId: infoB.connectionId });

    await a.signal('hello bob', 'chat', [infoB.connectionId]);
    const got = await b.waitEvent('signal:chat', { data: 'hello bob' });
    assert.equal(got.from, infoA.connectionId);
    assert.equal(got.signalType, 'signal:chat');
    const generic = await b.waitEvent('signal', { data: 'hello bob' });
    assert.equal(generic.from, infoA.connectionId);

    // Wire format (§2.4.5): sendMessage{message: JSON string}, notification sendMessage{data, type, from}.
    const sent = a.requests('sendMessage')[0];
    assert.deepEqual(JSON.parse(sent.params.message), { to: [infoB.connectionId], data: 'hello bob', type: 'signal:chat' });
    const note = b.notifications('sendMessage')[0];
    assert.deepEqual(note.params, { data: 'hello bob', type: 'signal:chat', from: infoA.connectionId });

    await b.signal('hello all', 'chat', []);
    const atA = await a.waitEvent('signal:chat', { data: 'hello all' });
    assert.equal(atA.from, infoB.connectionId);
    const atB = await b.waitEvent('signal:chat', { data: 'hello all' }); // the sender gets its own broadcast
    assert.equal(atB.from, infoB.connectionId);

    await sleep(300);
    assert.deepEqual(await a.events('signal:chat', { data: 'hello bob' }), [], 'A did not get the signal meant for B');
  });
});

test('REST DELETE connection evicts that browser with forceDisconnectByServer', async (t) => {
  await withBrowser(t, async (env) => {
    const { sessionId, a, b, infoA, infoB } = await joinTwo(env);
    await a.waitEvent('connectionCreated', { connectionId: infoB.connectionId });

    const res = await raw('DELETE', `/openvidu/api/sessions/${sessionId}/connection/${infoB.connectionId}`);
    assert.equal(res.status, 204, res.text);

    const gone = await b.waitEvent('sessionDisconnected');
    assert.equal(gone.reason, 'forceDisconnectByServer');
    const left = await a.waitEvent('connectionDestroyed', { connectionId: infoB.connectionId });
    assert.equal(left.reason, 'forceDisconnectByServer');

    const evicted = b.notifications('participantEvicted')[0];
    assert.ok(evicted, 'B received participantEvicted');
    assert.deepEqual(evicted.params, { connectionId: infoB.connectionId, reason: 'forceDisconnectByServer' });

    assert.equal(await getConnection(sessionId, infoB.connectionId), null);
    const s = await getSession(sessionId);
    assert.deepEqual(s.connections.content.map((c) => c.connectionId), [infoA.connectionId]);
  });
});

test('a network drop of the signalling socket is repaired by the `connect` RPC: same connection', async (t) => {
  await withBrowser(t, async (env) => {
    const { sessionId, a, b, infoA, infoB } = await joinTwo(env);
    await a.waitEvent('connectionCreated', { connectionId: infoB.connectionId });
    await b.waitEvent('connectionCreated', { connectionId: infoA.connectionId });
    const before = (await getSession(sessionId)).connections.content.map((c) => c.connectionId).sort();

    // TCP reset of both signalling sockets (no WebSocket close frame): a real network drop.
    assert.equal(env.pages.cut(), 2, 'both signalling sockets went through the proxy');
    for (const c of [a, b]) {
      await c.waitEvent('reconnecting');
      await c.waitEvent('reconnected');
    }
    for (const [c, info] of [[a, infoA], [b, infoB]]) {
      const conn = c.requests('connect')[0];
      assert.ok(conn, `${c.name} sent connect`);
      assert.deepEqual(conn.params, { sessionId: info.rpcSessionId });
      assert.equal(c.responseTo(conn).result.value, 'reconnection successful');
      assert.deepEqual(await c.events('sessionDisconnected'), []);
    }

    // Same connections, still active; nobody saw anybody leave.
    const after = (await getSession(sessionId)).connections.content;
    assert.deepEqual(after.map((c) => c.connectionId).sort(), before);
    assert.ok(after.every((c) => c.status === 'active'));
    assert.deepEqual(await a.events('connectionDestroyed'), []);
    assert.deepEqual(await b.events('connectionDestroyed'), []);

    // The new sockets are bound to the old participants: signals flow both ways.
    await a.signal('after drop', 'chat', [infoB.connectionId]);
    assert.equal((await b.waitEvent('signal:chat', { data: 'after drop' })).from, infoA.connectionId);
    await b.signal('back', 'chat', [infoA.connectionId]);
    assert.equal((await a.waitEvent('signal:chat', { data: 'back' })).from, infoB.connectionId);

    // The heartbeat restarts on the new socket with the interval parameter.
    await until('a ping with interval on the new socket', () => {
      const s = a.sockets[a.sockets.length - 1];
      return s.sent.find((m) => m.method === 'ping' && m.params && m.params.interval === 5000);
    }, { timeout: 7000 });
  });
});

test('a socket closed by the client without leaveRoom is resumed too', async (t) => {
  await withBrowser(t, async (env) => {
    const { sessionId, a, b, infoA, infoB } = await joinTwo(env);
    await b.waitEvent('connectionCreated', { connectionId: infoA.connectionId });

    await a.evaluate(() => window.ovt.closeSocket()); // WebSocket.close() under the library: close frame, no leaveRoom
    await a.waitEvent('reconnecting');
    await a.waitEvent('reconnected');
    assert.equal(a.responseTo(a.requests('connect')[0]).result.value, 'reconnection successful');

    const c = await getConnection(sessionId, infoA.connectionId);
    assert.equal(c.status, 'active');
    await a.signal('still here', 'chat', [infoB.connectionId]);
    assert.equal((await b.waitEvent('signal:chat', { data: 'still here' })).from, infoA.connectionId);
    assert.deepEqual(await b.events('connectionDestroyed'), []);
  });
});

test('a socket restored after the reconnection window gets networkDisconnect', async (t) => {
  await withBrowser(t, async (env) => {
    const { sessionId, a, b, infoA, infoB } = await joinTwo(env);
    await b.waitEvent('connectionCreated', { connectionId: infoA.connectionId });
    const aTunnels = env.pages.tunnelIds();
    // B joined last: its tunnel is the newest. Cut only A's.
    const cutIds = aTunnels.slice(0, -1);
    assert.equal(cutIds.length, 1);

    env.pages.block(true);
    env.pages.cut(cutIds);
    await a.waitEvent('reconnecting');

    // The server evicts A once the window (OPENVIDU_RECONNECTION_WINDOW, default 10 s) is over.
    const left = await b.waitEvent('connectionDestroyed', { connectionId: infoA.connectionId }, 25000);
    assert.equal(left.reason, 'networkDisconnect');
    assert.equal(await getConnection(sessionId, infoA.connectionId), null);

    // The library retries every 3 s; once through, `connect` fails (40007) and A learns it was evicted.
    env.pages.block(false);
    const gone = await a.waitEvent('sessionDisconnected', {}, 10000);
    assert.equal(gone.reason, 'networkDisconnect');
    const conn = a.requests('connect')[0];
    assert.equal(a.responseTo(conn).error.code, 40007);
    assert.deepEqual(await a.events('reconnected'), []);

    // B is unaffected.
    const s = await getSession(sessionId);
    assert.deepEqual(s.connections.content.map((c) => c.connectionId), [infoB.connectionId]);
  });
});

test('leaving: participantLeft for the others, the last one out closes the session', async (t) => {
  await withBrowser(t, async (env) => {
    const { sessionId, a, b, infoA, infoB } = await joinTwo(env);
    await b.waitEvent('connectionCreated', { connectionId: infoA.connectionId });

    await a.disconnect();
    assert.equal((await a.waitEvent('sessionDisconnected')).reason, 'disconnect');
    assert.equal((await b.waitEvent('connectionDestroyed', { connectionId: infoA.connectionId })).reason, 'disconnect');
    const leave = a.requests('leaveRoom')[0];
    assert.ok(leave, 'A sent leaveRoom');
    await until('leaveRoom answered', () => a.responseTo(leave));
    assert.ok(a.responseTo(leave).result, 'leaveRoom succeeded');

    const s = await getSession(sessionId);
    assert.ok(s, 'the session survives while B is in it');
    assert.deepEqual(s.connections.content.map((c) => c.connectionId), [infoB.connectionId]);

    await b.disconnect();
    assert.equal((await b.waitEvent('sessionDisconnected')).reason, 'disconnect');
    await until('the session to be closed (REST 404)', async () => (await getSession(sessionId)) === null,
      { timeout: 5000 });
  });
});
