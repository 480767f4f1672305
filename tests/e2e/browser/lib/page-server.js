'use strict';
// One loopback HTTP server that
//  * serves the test page (http://localhost:PORT/ is a secure context, so getUserMedia works) and the
//    openvidu-browser 2.20.0 bundle straight from node_modules;
//  * is the browser's HTTP proxy for 127.0.0.1: every signalling WebSocket to the server under test goes through
//    a CONNECT tunnel here, so a test can cut the TCP connections (a real network drop: no close frame) and
//    refuse new ones for a while.
const http = require('node:http');
const net = require('node:net');
const fs = require('node:fs');
const path = require('node:path');

const PAGE_DIR = path.join(__dirname, '..', 'page');
const BUNDLE = path.join(path.dirname(require.resolve('openvidu-browser/package.json')),
  'static', 'js', 'openvidu-browser-2.20.0.js');

const FILES = {
  '/': [path.join(PAGE_DIR, 'index.html'), 'text/html; charset=utf-8'],
  '/index.html': [path.join(PAGE_DIR, 'index.html'), 'text/html; charset=utf-8'],
  '/helpers.js': [path.join(PAGE_DIR, 'helpers.js'), 'text/javascript; charset=utf-8'],
  '/openvidu-browser-2.20.0.js': [BUNDLE, 'text/javascript; charset=utf-8'],
};

// allowedTarget: "host:port" the proxy may tunnel to (the server under test); anything else is refused.
async function startPageServer({ allowedTarget }) {
  const tunnels = new Set(); // { client, upstream, id }
  let nextId = 1;
  let blocked = false;
  const stats = { opened: 0, refused: 0 };

  const server = http.createServer((req, res) => {
    // Proxied requests carry an absolute URL; direct ones a path.
    const pathname = new URL(req.url, 'http://localhost').pathname;
    if (pathname === '/favicon.ico') {
      res.writeHead(204);
      res.end();
      return;
    }
    const file = FILES[pathname];
    if (req.method !== 'GET' || !file) {
      res.writeHead(404, { 'Content-Type': 'text/plain' });
      res.end('not found');
      return;
    }
    fs.readFile(file[0], (err, data) => {
      if (err) {
        res.writeHead(500, { 'Content-Type': 'text/plain' });
        res.end(String(err));
        return;
      }
      res.writeHead(200, { 'Content-Type': file[1], 'Cache-Control': 'no-store' });
      res.end(data);
    });
  });

  server.on('connect', (req, client, head) => {
    if (blocked || req.url !== allowedTarget) {
      stats.refused++;
      client.end(`HTTP/1.1 ${blocked ? 503 : 403} Refused\r\n\r\n`);
      return;
    }
    const i = req.url.lastIndexOf(':');
    const upstream = net.connect(Number(req.url.slice(i + 1)), req.url.slice(0, i));
    const t = { client, upstream, id: nextId++ };
    tunnels.add(t);
    stats.opened++;
    const drop = () => {
      tunnels.delete(t);
      client.destroy();
      upstream.destroy();
    };
    upstream.on('connect', () => {
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      if (head && head.length) upstream.write(head);
      upstream.pipe(client);
      client.pipe(upstream);
    });
    upstream.on('error', drop);
    client.on('error', drop);
    upstream.on('close', drop);
    client.on('close', drop);
  });

  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const port = server.address().port;

  return {
    port,
    pageUrl: `http://localhost:${port}/`,
    proxyUrl: `http://127.0.0.1:${port}`,
    stats,
    // Ids of the tunnels open now.
    tunnelIds: () => [...tunnels].map((t) => t.id),
    // Cuts tunnels abruptly (TCP reset on both sides); all of them when `ids` is omitted. Returns how many.
    cut(ids) {
      let n = 0;
      for (const t of [...tunnels]) {
        if (ids && !ids.includes(t.id)) continue;
        tunnels.delete(t);
        t.client.resetAndDestroy();
        t.upstream.resetAndDestroy();
        n++;
      }
      return n;
    },
    // While blocked, new tunnels are refused (the browser's WebSocket reconnection attempts fail).
    block(on) { blocked = !!on; },
    close() {
      for (const t of tunnels) { t.client.destroy(); t.upstream.destroy(); }
      tunnels.clear();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

module.exports = { startPageServer, BUNDLE };
