'use strict';
// openvidu-browser 2.20.0 in Chromium against openvidu-rs: WebRTC media (fake camera + microphone).
// Runs only with E2E_MEDIA=1 (spec §2.4.2, §2.4.3, §1.3.2).
const { test } = require('node:test');
const assert = require('node:assert/strict');
const { MEDIA, createSession, createToken, getSession, until, sleep } = require('../lib/env');
const { withBrowser } = require('../lib/browser');

const SKIP = !MEDIA && 'media tests run with E2E_MEDIA=1';
const OPTS = { skip: SKIP, timeout: 60000 };
const STREAM_ID_RE = /^str_CAM_[A-Za-z0-9]{4}_con_[A-Za-z0-9]{10}$/;

// Waits until `client`'s subscription to `streamId` has decoded video frames and received audio samples,
// then checks both counters still grow. Resolves to the last stats entry.
async function expectDecoding(client, streamId, timeout = 20000) {
  const entry = async () => (await client.subscriberStats()).find((s) => s.streamId === streamId);
  const first = await until(`${client.name} decoding video and audio of ${streamId}`, async () => {
    const s = await entry();
    return s && s.video && s.video.framesDecoded > 0 && s.audio && s.audio.totalSamplesReceived > 0 && s;
  }, { timeout, interval: 250 }).catch(async (e) => {
    e.message += `\n${client.name} subscriber stats: ${JSON.stringify(await client.subscriberStats())}`;
    throw e;
  });
  await sleep(1500);
  const later = await entry();
  assert.ok(later.video.framesDecoded > first.video.framesDecoded,
    `${client.name}: video frames keep being decoded (${first.video.framesDecoded} -> ${later.video.framesDecoded})`);
  assert.ok(later.audio.totalSamplesReceived > first.audio.totalSamplesReceived,
    `${client.name}: audio samples keep arriving (${first.audio.totalSamplesReceived} -> ${later.audio.totalSamplesReceived})`);
  await until(`${client.name}: the <video> of ${streamId} has a size`, async () => (await entry()).videoWidth > 0);
  return entry();
}

function checkPublisherEntry(pub, streamId) {
  assert.equal(pub.streamId, streamId);
  assert.equal(typeof pub.createdAt, 'number');
  const m = pub.mediaOptions;
  assert.equal(m.hasAudio, true);
  assert.equal(m.audioActive, true);
  assert.equal(m.hasVideo, true);
  assert.equal(m.videoActive, true);
  assert.equal(m.typeOfVideo, 'CAMERA');
  assert.equal(m.frameRate, 15);
  assert.equal(typeof m.videoDimensions, 'string');
  assert.deepEqual(Object.keys(JSON.parse(m.videoDimensions)).sort(), ['height', 'width']);
  assert.deepEqual(m.filter, {});
}

test('both publish camera+microphone and each decodes the other (late joiner and participantPublished paths)', OPTS, async (t) => {
  await withBrowser(t, async (env) => {
    const sessionId = await createSession();
    const [tokA, tokB] = [await createToken(sessionId), await createToken(sessionId)];
    const a = await env.newClient('A');
    const b = await env.newClient('B');

    const infoA = await a.join(tokA.token, 'A');
    const streamA = await a.publish();
    assert.match(streamA, STREAM_ID_RE);
    assert.ok(streamA.endsWith(infoA.connectionId), 'stream id ends with the owner connection id');

    // B joins after A published: A's stream comes in the joinRoom result (`value[].streams`).
    const infoB = await b.join(tokB.token, 'B');
    const seen = await b.waitEvent('streamCreated', { streamId: streamA });
    assert.equal(seen.connectionId, infoA.connectionId);
    assert.equal(seen.hasAudio, true);
    assert.equal(seen.hasVideo, true);
    assert.equal(seen.typeOfVideo, 'CAMERA');

    // B publishes: A learns it through participantPublished.
    const streamB = await b.publish();
    assert.ok(streamB.endsWith(infoB.connectionId));
    await a.waitEvent('streamCreated', { streamId: streamB });

    await expectDecoding(b, streamA);
    await expectDecoding(a, streamB);
    for (const c of [a, b]) {
      const out = await c.publisherStats();
      assert.ok(out.video && out.video.packetsSent > 0, `${c.name} sends video`);
      assert.ok(out.audio && out.audio.packetsSent > 0, `${c.name} sends audio`);
    }

    // Wire: what the browser sent and got (spec §2.2, §2.5).
    const pv = a.requests('publishVideo')[0];
    assert.equal(pv.params.doLoopback, false);
    assert.equal(pv.params.hasAudio, true);
    assert.equal(pv.params.hasVideo, true);
    assert.equal(pv.params.typeOfVideo, 'CAMERA');
    assert.match(pv.params.sdpOffer, /^v=0/);
    const pvr = a.responseTo(pv).result;
    assert.match(pvr.sdpAnswer, /^v=0/);
    assert.equal(pvr.id, streamA);
    assert.equal(typeof pvr.createdAt, 'number');
    const rv = b.requests('receiveVideoFrom')[0];
    assert.equal(rv.params.sender, streamA);
    assert.match(rv.params.sdpOffer, /^v=0/, 'kurento mode: the subscriber offers');
    assert.match(b.responseTo(rv).result.sdpAnswer, /^v=0/);
    assert.ok(a.requests('onIceCandidate').some((m) => m.params.endpointName === infoA.connectionId));
    assert.ok(b.requests('onIceCandidate').some((m) => m.params.endpointName === infoA.connectionId),
      'subscriber candidates name the publisher connection');
    const ice = b.notifications('iceCandidate');
    assert.ok(ice.some((m) => m.params.senderConnectionId === infoA.connectionId), 'server candidates for the subscription');
    const pp = a.notifications('participantPublished').find((m) => m.params.id === infoB.connectionId);
    assert.ok(pp, 'A got participantPublished for B');
    assert.equal(pp.params.streams[0].id, streamB);

    // REST: publishers and subscribers filled in.
    const s = await getSession(sessionId);
    const conn = new Map(s.connections.content.map((c) => [c.connectionId, c]));
    const ca = conn.get(infoA.connectionId);
    const cb = conn.get(infoB.connectionId);
    assert.equal(ca.publishers.length, 1);
    checkPublisherEntry(ca.publishers[0], streamA);
    assert.equal(cb.publishers.length, 1);
    checkPublisherEntry(cb.publishers[0], streamB);
    assert.deepEqual(ca.subscribers.map((x) => x.streamId), [streamB]);
    assert.deepEqual(cb.subscribers.map((x) => x.streamId), [streamA]);
    assert.equal(typeof ca.subscribers[0].createdAt, 'number');
  });
});

test('a subscribe-only participant (never asked for the camera) receives audio and video', OPTS, async (t) => {
  await withBrowser(t, async (env) => {
    const sessionId = await createSession();
    const [tokA, tokC] = [await createToken(sessionId), await createToken(sessionId, { role: 'SUBSCRIBER' })];
    const a = await env.newClient('A');
    // No camera/microphone permission in C's context: Chromium then hides its host addresses behind
    // mDNS names (<uuid>.local), which the server cannot resolve: it must use peer-reflexive candidates.
    const c = await env.newClient('C', null, { permissions: [] });
    await a.join(tokA.token, 'A');
    const streamA = await a.publish();
    const infoC = await c.join(tokC.token, 'C');
    assert.equal(infoC.role, 'SUBSCRIBER');
    await c.waitEvent('streamCreated', { streamId: streamA });
    await expectDecoding(c, streamA);
    const cands = c.requests('onIceCandidate').map((m) => m.params.candidate);
    t.diagnostic(`subscribe-only client sent ${cands.length} candidates, ${cands.filter((x) => /\.local /.test(x)).length} mDNS`);
  });
});

test('mute/unmute reach the subscriber (streamPropertyChanged); unpublish gives streamDestroyed(unpublish)', OPTS, async (t) => {
  await withBrowser(t, async (env) => {
    const sessionId = await createSession();
    const [tokA, tokB] = [await createToken(sessionId), await createToken(sessionId)];
    const a = await env.newClient('A');
    const b = await env.newClient('B');
    const infoA = await a.join(tokA.token, 'A');
    const infoB = await b.join(tokB.token, 'B');
    const streamA = await a.publish();
    await b.waitEvent('streamCreated', { streamId: streamA });
    await expectDecoding(b, streamA);

    // Mute: streamPropertyChanged RPC, relayed to the subscriber (spec §2.5: newValue is the JSON text).
    await a.publishAudio(false);
    const muted = await b.waitEvent('streamPropertyChanged', { streamId: streamA, changedProperty: 'audioActive' });
    assert.equal(muted.newValue, false);
    assert.equal(muted.reason, 'publishAudio');
    await a.publishVideo(false);
    const dark = await b.waitEvent('streamPropertyChanged', { streamId: streamA, changedProperty: 'videoActive' });
    assert.equal(dark.newValue, false);
    assert.equal(dark.reason, 'publishVideo');
    const spc = a.requests('streamPropertyChanged')[0];
    assert.deepEqual(spc.params, { streamId: streamA, property: 'audioActive', newValue: false, reason: 'publishAudio' });
    await until('streamPropertyChanged answered', () => a.responseTo(spc));
    assert.ok(a.responseTo(spc).result, JSON.stringify(a.responseTo(spc)));
    await until('REST to show the stream muted', async () => {
      const s = await getSession(sessionId);
      const m = s.connections.content.find((x) => x.connectionId === infoA.connectionId).publishers[0].mediaOptions;
      return m.audioActive === false && m.videoActive === false;
    }, { timeout: 5000 });
    await a.publishAudio(true);
    const unmuted = await b.waitEvent('streamPropertyChanged', { streamId: streamA, changedProperty: 'audioActive', newValue: true });
    assert.equal(unmuted.oldValue, false);

    await a.unpublish();
    assert.equal((await b.waitEvent('streamDestroyed', { streamId: streamA })).reason, 'unpublish');
    const up = a.requests('unpublishVideo')[0];
    await until('unpublishVideo answered', () => a.responseTo(up));
    assert.ok(a.responseTo(up).result, JSON.stringify(a.responseTo(up)));

    await until('REST to show no publisher and no subscriber', async () => {
      const s = await getSession(sessionId);
      const byId = new Map(s.connections.content.map((x) => [x.connectionId, x]));
      return byId.get(infoA.connectionId).publishers.length === 0 && byId.get(infoB.connectionId).subscribers.length === 0;
    }, { timeout: 5000 });
  });
});

test('media keeps flowing across a signalling socket drop', OPTS, async (t) => {
  await withBrowser(t, async (env) => {
    const sessionId = await createSession();
    const [tokA, tokB] = [await createToken(sessionId), await createToken(sessionId)];
    const a = await env.newClient('A');
    const b = await env.newClient('B');
    await a.join(tokA.token, 'A');
    await b.join(tokB.token, 'B');
    const streamA = await a.publish();
    await b.waitEvent('streamCreated', { streamId: streamA });
    const before = await expectDecoding(b, streamA);

    env.pages.cut();
    await b.waitEvent('reconnected');
    await a.waitEvent('reconnected');
    const after = await expectDecoding(b, streamA);
    assert.ok(after.video.framesDecoded > before.video.framesDecoded);
    assert.deepEqual(await b.events('streamDestroyed'), []);
  });
});
