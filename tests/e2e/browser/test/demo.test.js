'use strict';
// The demo page served by openvidu-server itself (OPENVIDU_DEMO=true): GET / and POST /demo/token.
const { test, before } = require('node:test');
const assert = require('node:assert/strict');
const { OV_URL, MEDIA, uniqueId, raw, getSession, until } = require('../lib/env');
const { withBrowser } = require('../lib/browser');

let routes = false;
before(async () => {
  const res = await raw('GET', '/', { auth: false });
  routes = res.status === 200 && res.text.includes('openvidu-rs demo');
});
const noRoutes = () => !routes && 'the server does not serve the demo page (GET / with OPENVIDU_DEMO=true)';

async function openDemo(env, name) {
  const c = await env.newClient(name, new URL('/', OV_URL).href);
  return c;
}

async function joinDemo(c, sessionName, user) {
  await c.page.fill('#session-name', sessionName);
  await c.page.fill('#user-name', user);
  await c.page.click('#join');
  await c.page.waitForSelector('body[data-state="joined"]', { timeout: 10000 });
  return c.page.evaluate(() => document.body.dataset.connectionId);
}

test('POST /demo/token creates the session and answers a token', async (t) => {
  if (noRoutes()) return t.skip(noRoutes());
  const name = uniqueId('demo');
  const res = await raw('POST', '/demo/token', { auth: false, body: { session: name } });
  assert.equal(res.status, 200, res.text);
  const { token } = res.json();
  assert.ok(token.startsWith('wss://'), token);
  assert.ok(token.includes(`sessionId=${name}&token=tok_`), token);
  assert.ok(await getSession(name), 'the session exists');
  // A second call for the same session works too (the session is reused).
  const again = await raw('POST', '/demo/token', { auth: false, body: { session: name } });
  assert.equal(again.status, 200, again.text);
  await raw('DELETE', `/openvidu/api/sessions/${name}`);
});

test('demo page: join by session name, appear in REST, leave', async (t) => {
  if (noRoutes()) return t.skip(noRoutes());
  await withBrowser(t, async (env) => {
    const name = uniqueId('demo');
    const c = await openDemo(env, 'demo-alice');
    const connectionId = await joinDemo(c, name, 'alice');
    const s = await getSession(name);
    const conn = s.connections.content.find((x) => x.connectionId === connectionId);
    assert.ok(conn, 'REST lists the demo participant');
    assert.equal(conn.status, 'active');
    assert.equal(conn.clientData, JSON.stringify({ clientData: 'alice' }));

    await c.page.click('#leave');
    await c.page.waitForSelector('body[data-state="idle"]', { timeout: 10000 });
    await until('the session to close after the only participant left', async () => (await getSession(name)) === null,
      { timeout: 5000 });
  });
});

test('demo page: two participants see each other\'s video', { skip: !MEDIA && 'media tests run with E2E_MEDIA=1', timeout: 60000 }, async (t) => {
  if (noRoutes()) return t.skip(noRoutes());
  await withBrowser(t, async (env) => {
    const name = uniqueId('demo');
    const a = await openDemo(env, 'demo-alice');
    const b = await openDemo(env, 'demo-bob');
    const idA = await joinDemo(a, name, 'alice');
    const idB = await joinDemo(b, name, 'bob');
    for (const [c, other, otherName] of [[a, idB, 'bob'], [b, idA, 'alice']]) {
      await c.page.waitForSelector('body[data-published="true"]', { timeout: 20000 });
      const sel = `.tile.remote[data-connection-id="${other}"] video`;
      await c.page.waitForFunction((s) => {
        const v = document.querySelector(s);
        return v && v.videoWidth > 0 && v.currentTime > 0;
      }, sel, { timeout: 20000, polling: 250 });
      const label = await c.page.textContent(`.tile.remote[data-connection-id="${other}"] .name`);
      assert.equal(label, otherName);
    }
    const s = await getSession(name);
    assert.equal(s.connections.numberOfElements, 2);
    assert.ok(s.connections.content.every((x) => x.publishers.length === 1 && x.subscribers.length === 1));
  });
});
