'use strict';
// A browser (openvidu-browser 2.20.0) and a Rust participant bot (examples/bot.rs, real VP8 from an
// IVF file made by ffmpeg) in one session see each other's media. Runs with E2E_MEDIA=1.
const { test } = require('node:test');
const assert = require('node:assert/strict');
const { spawn, execFileSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { MEDIA, createSession, createToken, until } = require('../lib/env');
const { withBrowser } = require('../lib/browser');

const ROOT = path.resolve(__dirname, '../../../..');
const BOT = process.env.BOT_BIN || path.join(ROOT, 'target/debug/examples/bot');
const SKIP = (!MEDIA && 'media tests run with E2E_MEDIA=1') || (!fs.existsSync(BOT) && `no bot binary at ${BOT}`);

function makeIvf() {
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'ovbot-')), 'testsrc.ivf');
  execFileSync('ffmpeg', ['-v', 'error', '-f', 'lavfi', '-i', 'testsrc=size=320x240:rate=15', '-t', '4',
    '-c:v', 'libvpx', '-b:v', '300k', '-g', '15', '-y', file]);
  return file;
}

test('a browser and a Rust bot in one session decode/receive each other', { skip: SKIP, timeout: 60000 }, async (t) => {
  const ivf = makeIvf();
  await withBrowser(t, async (env) => {
    const sessionId = await createSession();
    const [tokA, tokBot] = [await createToken(sessionId), await createToken(sessionId)];
    const a = await env.newClient('A');
    const infoA = await a.join(tokA.token, 'A');
    const streamA = await a.publish();

    const bot = spawn(BOT, [tokBot.token, '--ivf', ivf, '--seconds', '12'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    bot.stdout.on('data', (d) => { out += d; });
    bot.stderr.on('data', (d) => { err += d; });
    const exited = new Promise((resolve) => bot.on('exit', resolve));
    t.after(() => bot.kill('SIGKILL'));

    const botConnection = await until('the bot joined', () => (out.match(/^joined (con_\S+)/m) || [])[1], { timeout: 20000 })
      .catch((e) => { e.message += `\nbot stdout: ${out}\nbot stderr: ${err.slice(-2000)}`; throw e; });
    const seen = await a.waitEvent('streamCreated', { connectionId: botConnection }, 20000);
    // The browser decodes the bot's real VP8.
    await until('A decodes the bot video', async () => {
      const s = (await a.subscriberStats()).find((x) => x.streamId === seen.streamId);
      return s && s.video && s.video.framesDecoded > 10;
    }, { timeout: 20000, interval: 250 });

    const code = await exited;
    assert.equal(code, 0, `bot exit code (stderr: ${err.slice(-2000)})`);
    const lines = out.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l));
    const fromA = lines.find((l) => l.stream === streamA);
    assert.ok(fromA, `the bot subscribed to the browser's stream: ${out}`);
    assert.equal(fromA.publisher, infoA.connectionId);
    assert.ok(fromA.videoPackets > 50, `the bot received the browser's video: ${JSON.stringify(fromA)}`);
    assert.ok(fromA.audioPackets > 50, `the bot received the browser's audio: ${JSON.stringify(fromA)}`);
    assert.ok(fromA.videoKeyframes > 0, 'a keyframe reached the bot');
  });
});
