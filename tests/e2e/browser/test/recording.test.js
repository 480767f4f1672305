'use strict';
// openvidu-browser 2.20.0 in Chromium, recorded by openvidu-rs: a COMPOSED recording of a real browser's
// camera + microphone (Chromium's fake devices), checked with ffprobe; recordingStarted/recordingStopped
// reach the participants (spec §3). Runs only with E2E_MEDIA=1.
const { test } = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const { execFileSync } = require('node:child_process');
const { MEDIA, raw, createSession, createToken, sleep } = require('../lib/env');
const { withBrowser } = require('../lib/browser');

const SKIP = !MEDIA && 'media tests run with E2E_MEDIA=1';

function ffprobe(file) {
  return JSON.parse(execFileSync('ffprobe', ['-v', 'error', '-show_streams', '-show_format', '-of', 'json', file]));
}

test('a browser\'s camera and microphone recorded COMPOSED into an H.264/AAC MP4', { skip: SKIP, timeout: 90000 }, async (t) => {
  await withBrowser(t, async (env) => {
    const sessionId = await createSession();
    const a = await env.newClient('A');
    const b = await env.newClient('B');
    await a.join((await createToken(sessionId)).token, 'A');
    await b.join((await createToken(sessionId, { role: 'SUBSCRIBER' })).token, 'B');
    const streamA = await a.publish();
    await b.waitEvent('streamCreated', { streamId: streamA });
    await sleep(1000);

    const start = await raw('POST', '/openvidu/api/recordings/start', {
      body: { session: sessionId, outputMode: 'COMPOSED', resolution: '640x480', frameRate: 15, name: 'browser' },
    });
    assert.equal(start.status, 200, start.text);
    const started = start.json();
    const t0 = Date.now();
    assert.equal(started.status, 'started');
    // publisher_moderator (the default): the publisher is told, the subscriber is not.
    const ev = await a.waitEvent('recordingStarted', { id: started.id });
    assert.equal(ev.name, 'browser');

    await sleep(4000);
    // The recording covers start → the stop request (processing comes after).
    const wall = (Date.now() - t0) / 1000;
    const stop = await raw('POST', `/openvidu/api/recordings/stop/${started.id}`);
    assert.equal(stop.status, 200, stop.text);
    const stopped = stop.json();
    assert.equal(stopped.status, 'ready');
    const stoppedEv = await a.waitEvent('recordingStopped', { id: started.id });
    assert.equal(stoppedEv.reason, 'recordingStoppedByServer');
    assert.equal((await b.events('recordingStarted')).length, 0, 'SUBSCRIBERs are not told (publisher_moderator)');

    const file = path.join(process.env.OV_RECORDING_PATH, started.id, 'browser.mp4');
    const probe = ffprobe(file);
    const video = probe.streams.find((s) => s.codec_type === 'video');
    const audio = probe.streams.find((s) => s.codec_type === 'audio');
    assert.equal(video.codec_name, 'h264');
    assert.equal(video.width, 640);
    assert.equal(video.height, 480);
    assert.equal(audio.codec_name, 'aac');
    const duration = Number(probe.format.duration);
    assert.ok(Math.abs(duration - wall) <= wall * 0.1, `duration ${duration} vs wall clock ${wall}`);
    execFileSync('ffmpeg', ['-v', 'error', '-nostdin', '-i', file, '-f', 'null', '-']);
    t.diagnostic(`recorded ${duration.toFixed(2)} s (${stopped.size} bytes) of ${wall.toFixed(2)} s`);

    // The download route serves it (authenticated).
    assert.equal((await raw('GET', `/openvidu/recordings/${started.id}/browser.mp4`, { auth: false })).status, 401);
    const dl = await raw('GET', `/openvidu/recordings/${started.id}/browser.mp4`);
    assert.equal(dl.status, 200);
    assert.equal(Number(dl.headers['content-length']), stopped.size);
  });
});
