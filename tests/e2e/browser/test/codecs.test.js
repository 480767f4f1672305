'use strict';
// forcedVideoCodec (spec §2.4.2): with VP9 or H264 forced on the session, Chromium publishes that codec
// through the SFU and the other browser decodes it. Runs with E2E_MEDIA=1.
const { test } = require('node:test');
const assert = require('node:assert/strict');
const { MEDIA, raw, createToken, until } = require('../lib/env');
const { withBrowser } = require('../lib/browser');

const SKIP = !MEDIA && 'media tests run with E2E_MEDIA=1';

for (const codec of ['VP9', 'H264']) {
  test(`forcedVideoCodec ${codec}: published and decoded as ${codec}`, { skip: SKIP, timeout: 60000 }, async (t) => {
    const res = await raw('POST', '/openvidu/api/sessions', { body: { forcedVideoCodec: codec } });
    assert.equal(res.status, 200);
    const sessionId = res.json().id;
    assert.equal(res.json().forcedVideoCodec, codec);
    await withBrowser(t, async (env) => {
      const a = await env.newClient('A');
      const b = await env.newClient('B');
      await a.join((await createToken(sessionId)).token, 'A');
      const stream = await a.publish();
      await b.join((await createToken(sessionId)).token, 'B');
      await b.waitEvent('streamCreated', { streamId: stream });
      const decoded = await until(`B decodes ${codec}`, async () => {
        const s = (await b.subscriberStats()).find((x) => x.streamId === stream);
        return s && s.video && s.video.framesDecoded > 5 && s;
      }, { timeout: 20000, interval: 250 }).catch(async (e) => {
        e.message += `\nB stats: ${JSON.stringify(await b.subscriberStats())}`;
        throw e;
      });
      assert.equal(decoded.video.codec, `video/${codec}`, 'the negotiated codec');
    });
  });
}
