'use strict';
// High availability with a real browser: one openvidu-browser 2.20.0 participant keeps its remote video
// playing across a kill -9 of the master holding its WebSocket. The test starts its own cluster (lib/cluster.js:
// redis-server, one media node, 3 masters, HAProxy in front of them; run.sh's server is not used), a Rust bot
// publishing real VP8 (looped IVF) and a browser B subscribed to it, both joined through HAProxy and steered onto
// the same master. It finds B's master in the masters' socket registry in Redis, SIGKILLs it (both sockets drop),
// and checks that B's openvidu-browser re-binds its socket through HAProxy to a surviving master (`connect` with
// its JSON-RPC session id, answered without error), is not evicted (not even by the clean-up of the dead master's
// participants, which runs within the observation period: OPENVIDU_RECONNECTION_WINDOW=5), and that its video
// keeps being decoded.
// Runs with E2E_MEDIA=1; E2E_HA_DEBUG=1 prints progress on stderr, E2E_KEEP_CLUSTER=1 keeps the cluster's
// folder (logs, HAProxy config).
const { test } = require('node:test');
const assert = require('node:assert/strict');
const { spawn, execFileSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { MEDIA, until, sleep } = require('../lib/env');
const { withBrowser } = require('../lib/browser');
const { startCluster, missing, which, ROOT } = require('../lib/cluster');

const BOT = process.env.BOT_BIN || path.join(ROOT, 'target/debug/examples/bot');
const SKIP = (!MEDIA && 'media tests run with E2E_MEDIA=1') ||
  missing() ||
  (!fs.existsSync(BOT) && `no bot binary at ${BOT} (cargo build --example bot --features participant)`) ||
  (!which('ffmpeg') && 'ffmpeg is not installed (scripts/install-deps)');

// How long B is watched after the kill: past the dead master's lease (3 s) + the reconnection window (5 s),
// when a surviving master evicts the dead master's participants that did not come back.
const OBSERVE_MS = 12000;
const RECONNECTION_WINDOW_S = 5;
// E2E_HA_DEBUG=1: progress on stderr while the test runs.
const progress = process.env.E2E_HA_DEBUG === '1' ? (m) => console.error(`[ha ${new Date().toISOString()}] ${m}`) : () => {};

function makeIvf(dir) {
  const file = path.join(dir, 'testsrc.ivf');
  execFileSync('ffmpeg', ['-v', 'error', '-nostdin', '-f', 'lavfi', '-i', 'testsrc=size=320x240:rate=15', '-t', '4',
    '-c:v', 'libvpx', '-b:v', '300k', '-g', '15', '-y', file]);
  return file;
}

async function framesDecoded(client, streamId) {
  const s = (await client.subscriberStats()).find((x) => x.streamId === streamId);
  return s && s.video ? s.video.framesDecoded : 0;
}

test('a browser keeps its remote video across a kill -9 of the master holding its socket',
  { skip: SKIP, timeout: 90000 }, async (t) => {
    const cluster = await startCluster({
      masters: 3,
      masterEnv: { OPENVIDU_RECONNECTION_WINDOW: String(RECONNECTION_WINDOW_S) },
    });
    t.after(() => cluster.stop());
    progress(`cluster up: HAProxy ${cluster.lbUrl}, logs in ${cluster.dir}`);
    const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'ov-browser-ha-bot-'));
    t.after(() => fs.rmSync(scratch, { recursive: true, force: true }));
    let bot = null;
    t.after(() => bot && bot.kill('SIGKILL'));
    let botOut = '';
    let botErr = '';

    try {
      await withBrowser(t, async (env) => {
        // Also when the test times out while the callback still waits (withBrowser's finally then never runs).
        t.after(async () => { await env.close().catch(() => {}); });
        const ivf = makeIvf(scratch);
        const sessionId = await cluster.createSession();
        const tokB = await cluster.createToken(sessionId);
        const tokBot = await cluster.createToken(sessionId);
        assert.ok(tokB.token.startsWith(`wss://127.0.0.1:${cluster.lbPort}?`), `the token points at HAProxy: ${tokB.token}`);

        // B joins through HAProxy.
        const b = await env.newClient('B');
        progress('B opened the page');
        const infoB = await b.join(tokB.token, 'B');
        progress(`B joined: ${JSON.stringify(infoB)}`);
        assert.equal(infoB.connectionId, tokB.connectionId);
        assert.ok(b.sockets[0].url.startsWith(`wss://127.0.0.1:${cluster.lbPort}/openvidu`), b.sockets[0].url);

        // The publisher: the Rust bot (real VP8, the IVF looped), also through HAProxy. HAProxy deals new
        // connections round-robin: after one request per other master, the bot's socket lands on B's master, so
        // the kill takes both sockets down (the harder case: the publisher has to re-bind too).
        for (let i = 1; i < cluster.masters.length; i++) await cluster.restOk('GET', '/openvidu/api/health');
        bot = spawn(BOT, [tokBot.token, '--ivf', ivf, '--seconds', '120'], { stdio: ['ignore', 'pipe', 'pipe'] });
        bot.stdout.on('data', (d) => { botOut += d; });
        bot.stderr.on('data', (d) => { botErr += d; });
        let botExit = null;
        bot.on('exit', (code, signal) => { botExit = code === null ? signal : code; });
        const botConnection = await until('the bot joined', () => (botOut.match(/^joined (con_\S+)/m) || [])[1],
          { timeout: 20000 });
        progress(`the bot joined: ${botConnection}`);
        const seen = await b.waitEvent('streamCreated', { connectionId: botConnection }, 20000);
        await until('B decodes the bot video', async () => (await framesDecoded(b, seen.streamId)) > 30,
          { timeout: 20000, interval: 250 });

        progress('B decodes the bot');
        // Who holds which socket (the masters' registry in Redis).
        const before = await cluster.socketEntry(infoB.rpcSessionId);
        assert.ok(before, `B's socket is in the registry (rpc id ${infoB.rpcSessionId})`);
        assert.equal(before.connection, infoB.connectionId);
        const victim = cluster.master(before.master);
        assert.ok(victim, `B's master ${before.master} is one of ours`);
        const botBefore = await cluster.socketOfConnection(botConnection);
        const botMaster = botBefore && cluster.master(botBefore.master);
        t.diagnostic(`masters: ${cluster.masters.map((m) => `${m.name}=${m.id}`).join(', ')}`);
        t.diagnostic(`B (${infoB.connectionId}) on ${victim.name}; the bot (${botConnection}) on ` +
          `${botMaster ? botMaster.name : '?'}${botMaster === victim ? ' (the same: it re-binds too)' : ''}`);

        // kill -9 B's master.
        const f0 = await framesDecoded(b, seen.streamId);
        const killedAt = Date.now();
        await victim.proc.kill(); // SIGKILL, then reaped
        t.diagnostic(`killed ${victim.name} (pid ${victim.proc.pid}) with SIGKILL; B had decoded ${f0} frames`);

        // Sample B's decoded frames every 250 ms for OBSERVE_MS.
        let prev = f0;
        let lastChange = killedAt;
        let longestGap = 0;
        let plus30At = null;
        let last = f0;
        while (Date.now() - killedAt < OBSERVE_MS) {
          await sleep(250);
          const f = await framesDecoded(b, seen.streamId);
          const now = Date.now();
          if (f > prev) {
            longestGap = Math.max(longestGap, now - lastChange);
            lastChange = now;
            prev = f;
          }
          if (plus30At === null && f >= f0 + 30) plus30At = now;
          last = f;
        }
        longestGap = Math.max(longestGap, Date.now() - lastChange);

        // B re-bound its socket: openvidu-browser's `reconnected` after a `connect` answered without error.
        const reconnected = await b.waitEvent('reconnected', {}, 5000);
        const reconnecting = (await b.events('reconnecting'))[0];
        const connects = b.requests('connect');
        assert.ok(connects.length >= 1, 'B sent `connect` on a new socket');
        const connect = connects[connects.length - 1];
        assert.equal(connect.params.sessionId, infoB.rpcSessionId, 'B re-binds with its JSON-RPC session id');
        const answer = b.responseTo(connect);
        assert.ok(answer && answer.result && !answer.error, `\`connect\` answered: ${JSON.stringify(answer)}`);
        const open = b.sockets.filter((s) => !s.closed);
        assert.equal(open.length, 1, 'one signalling socket open');
        assert.ok(b.sockets.length >= 2 && b.sockets[0].closed, 'the first socket closed with its master');
        assert.ok(open[0].url.startsWith(`wss://127.0.0.1:${cluster.lbPort}/openvidu`), 'the new socket is to HAProxy');

        // ... to a surviving master, which claimed it in the registry.
        const after = await cluster.socketEntry(infoB.rpcSessionId);
        assert.ok(after && after.master !== victim.id, `B's socket left the dead master: ${JSON.stringify(after)}`);
        const newMaster = cluster.master(after.master);
        assert.ok(newMaster && newMaster.proc.alive, 'held by a surviving master');
        assert.equal(after.connection, infoB.connectionId, 'same connection');
        assert.ok(after.epoch > before.epoch, 'a newer epoch');

        t.diagnostic(`re-bind: 'reconnecting' ${reconnecting ? reconnecting.t - killedAt : '?'} ms, 'reconnected' ` +
          `${reconnected.t - killedAt} ms after the kill, B's socket now on ${newMaster.name} (epoch ${before.epoch} ` +
          `-> ${after.epoch}), ${b.sockets.length} socket(s) in all`);
        t.diagnostic(`frames decoded by B: ${f0} at the kill, ${last} ${OBSERVE_MS} ms later (+${last - f0}); ` +
          `+30 reached ${plus30At === null ? 'never' : `${plus30At - killedAt} ms`} after the kill; ` +
          `longest gap without a new frame ${longestGap} ms (sampled every 250 ms)`);

        // The video kept playing.
        assert.ok(plus30At !== null && plus30At - killedAt <= 15000,
          `B decoded 30 more frames within 15 s of the kill (${f0} -> ${last})`);
        assert.ok(longestGap < 4000, `the video never froze for 4 s (longest gap ${longestGap} ms)`);

        // Nobody was evicted: the dead master's clean-up ran (it is unlisted) and left B and the bot alone.
        await until('a surviving master cleaned up after the dead one', async () =>
          !(await cluster.smembers('ov:masters')).includes(victim.id), { timeout: 10000, interval: 250 });
        for (const type of ['sessionDisconnected', 'connectionDestroyed', 'streamDestroyed']) {
          assert.deepEqual(await b.events(type), [], `B got no ${type}`);
        }
        const session = await cluster.getSession(sessionId);
        assert.ok(session, 'the session still exists');
        const conns = session.connections.content.map((c) => `${c.id}:${c.status}`).sort();
        assert.deepEqual(conns, [`${botConnection}:active`, `${infoB.connectionId}:active`].sort(),
          'the REST session lists the same two active connections');
        assert.equal(botExit, null, `the bot still runs (stderr: ${botErr.slice(-2000)})`);
        const botAfter = await cluster.socketOfConnection(botConnection);
        const botNow = botAfter && cluster.master(botAfter.master);
        assert.ok(botNow && botNow.proc.alive, `the bot is held by a live master: ${JSON.stringify(botAfter)}`);
        t.diagnostic(`after the kill: B on ${newMaster.name}, the bot on ${botNow.name}; the dead master's clean-up ` +
          `ran (it is unlisted) and the REST session lists both connections as active`);

        // B's new socket carries signals both ways: B's broadcast comes back to it, a REST signal reaches it.
        await b.signal('from-b-after-failover', 'ha', []);
        await b.waitEvent('signal', { data: 'from-b-after-failover', from: infoB.connectionId }, 5000);
        await cluster.restOk('POST', '/openvidu/api/signal',
          { session: sessionId, to: [infoB.connectionId], type: 'ha', data: 'from-rest-after-failover' });
        await b.waitEvent('signal', { data: 'from-rest-after-failover' }, 5000);
      }, { target: `127.0.0.1:${cluster.lbPort}` });
    } catch (e) {
      e.message += `\nbot stdout: ${botOut.slice(-2000)}\nbot stderr: ${botErr.slice(-3000)}\n${cluster.logs(60)}`;
      throw e;
    }
  });
