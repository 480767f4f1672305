'use strict';
// A high-availability cluster of real processes on loopback, the same shape as tests/ha/cluster.rs: a
// `redis-server` without persistence, one `openvidu-media-node`, N `openvidu-server` masters sharing their
// state in Redis, and HAProxy in front of the masters (roundrobin, health checks on /openvidu/api/health).
//
// One difference: HAProxy terminates TLS (a throw-away self-signed certificate made by openssl), and the
// public URL is https://127.0.0.1:PORT: openvidu-browser 2.20.0 always opens `wss://<token host>/openvidu`,
// whatever the token's scheme, so a real browser cannot reach a plain-HTTP balancer. The test browser sends
// every connection to 127.0.0.1 through its page server's CONNECT proxy (lib/browser.js), which then has to
// be started with { target: HAProxy's host:port }.
//
// Every process is started by this module and killed (SIGKILL) by stop(), or at the latest when the test
// process exits.
const { spawn, execFile, execFileSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const net = require('node:net');
const https = require('node:https');
const crypto = require('node:crypto');

const ROOT = path.resolve(__dirname, '../../../..');
const TARGET = process.env.CARGO_TARGET_DIR ? path.resolve(ROOT, process.env.CARGO_TARGET_DIR) : path.join(ROOT, 'target');
const SERVER_BIN = path.join(TARGET, 'debug', 'openvidu-server');
const NODE_BIN = path.join(TARGET, 'debug', 'openvidu-media-node');
// Keys of the masters' shared state (openvidu-server/src/server.rs: Cluster::connect(url, "ov:")).
const PREFIX = 'ov:';

// Executable `name` on PATH (or in the sbin folders, where Debian puts haproxy), or null.
function which(name) {
  const dirs = (process.env.PATH || '').split(':').concat(['/usr/sbin', '/sbin', '/usr/local/sbin']);
  for (const d of dirs) {
    const p = path.join(d || '.', name);
    try {
      fs.accessSync(p, fs.constants.X_OK);
      if (fs.statSync(p).isFile()) return p;
    } catch { /* not here */ }
  }
  return null;
}

// Why the cluster cannot run here (a missing binary or tool), or null.
function missing() {
  for (const bin of [SERVER_BIN, NODE_BIN]) {
    if (!fs.existsSync(bin)) return `${bin} is missing (cargo build -p openvidu-server -p openvidu-media-node)`;
  }
  for (const tool of ['redis-server', 'redis-cli', 'haproxy', 'openssl']) {
    if (!which(tool)) return `${tool} is not installed (scripts/install-deps)`;
  }
  return null;
}

function freePort(host = '127.0.0.1') {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, host, () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

function canConnect(port) {
  return new Promise((resolve) => {
    const c = net.connect(port, '127.0.0.1');
    c.once('connect', () => { c.destroy(); resolve(true); });
    c.once('error', () => resolve(false));
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Every child of every cluster of this process, killed when the process exits whatever happened.
const children = new Set();
process.once('exit', () => {
  for (const c of children) {
    try { c.kill('SIGKILL'); } catch { /* gone */ }
  }
});

// The environment of a child: ours without any setting of the server under test that run.sh may have
// exported, plus `extra`.
function childEnv(extra) {
  const env = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (/^(OPENVIDU_|KMS_|MEDIA_NODE_|HTTPS?_PORT$|SERVER_(ADDRESS|PORT)$|DOMAIN_OR_PUBLIC_IP$|RUST_LOG$)/.test(k)) continue;
    env[k] = v;
  }
  env.NO_COLOR = '1'; // plain logs (tracing-subscriber)
  return Object.assign(env, extra);
}

// A child process whose stdout and stderr go to `log` (a file); killed with SIGKILL by kill().
class Proc {
  constructor(name, cmd, args, { env, log }) {
    this.name = name;
    this.log = log;
    this.lines = [];
    this.exitCode = undefined;
    const out = fs.openSync(log, 'a');
    this.child = spawn(cmd, args, { env: env || process.env, stdio: ['ignore', 'pipe', out] });
    fs.closeSync(out);
    children.add(this.child);
    this.exited = new Promise((resolve) => {
      this.child.once('exit', (code, signal) => {
        this.exitCode = code === null ? signal : code;
        children.delete(this.child);
        resolve(this.exitCode);
      });
      this.child.once('error', (e) => {
        this.exitCode = String(e);
        children.delete(this.child);
        resolve(this.exitCode);
      });
    });
    let buf = '';
    this.child.stdout.on('data', (d) => {
      fs.appendFileSync(log, d);
      buf += d;
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        this.lines.push(buf.slice(0, i));
        buf = buf.slice(i + 1);
      }
    });
  }

  get pid() { return this.child.pid; }
  get alive() { return this.exitCode === undefined; }

  // Waits for a stdout line starting with `prefix`; resolves to the rest of it.
  async ready(prefix, timeout = 30000) {
    const deadline = Date.now() + timeout;
    for (;;) {
      const line = this.lines.find((l) => l.startsWith(prefix));
      if (line) return line.slice(prefix.length).trim();
      if (!this.alive) throw new Error(`${this.name} exited (${this.exitCode}) before it was ready\n${this.tail()}`);
      if (Date.now() > deadline) throw new Error(`${this.name} did not print '${prefix}' within ${timeout} ms\n${this.tail()}`);
      await sleep(20);
    }
  }

  // SIGKILL, then waits until it is reaped.
  async kill() {
    if (this.alive) {
      try { this.child.kill('SIGKILL'); } catch { /* gone */ }
    }
    await this.exited;
  }

  // The last `n` lines of its log.
  tail(n = 40) {
    let text = '';
    try { text = fs.readFileSync(this.log, 'utf8'); } catch { /* no log */ }
    const lines = text.split('\n');
    return `----- ${this.name} (pid ${this.pid}, ${this.alive ? 'running' : `exited: ${this.exitCode}`}), ` +
      `last ${n} lines of ${this.log} -----\n${lines.slice(-n - 1).join('\n')}`;
  }
}

// Starts the cluster. opts: masters (default 3), rustLog (the masters' RUST_LOG, default info: their logs
// only go to files), masterEnv (more environment for the masters). Resolves to a Cluster.
async function startCluster({ masters = 3, rustLog = 'info', masterEnv = {} } = {}) {
  const c = new Cluster();
  try {
    await c.start(masters, rustLog, masterEnv);
  } catch (e) {
    e.message += `\n${c.logs()}`;
    await c.stop();
    throw e;
  }
  return c;
}

class Cluster {
  constructor() {
    this.secret = `HA_${crypto.randomBytes(8).toString('hex')}`;
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ov-browser-ha-'));
    this.procs = [];
    this.masters = []; // { index, id, url, proc }
  }

  async start(masterCount, rustLog, masterEnv) {
    const log = (name) => path.join(this.dir, `${name}.log`);

    // Redis, without persistence, in its own folder.
    this.redisPort = await freePort();
    const redisDir = path.join(this.dir, 'redis');
    fs.mkdirSync(redisDir);
    this.redis = this.spawn('redis', 'redis-server', ['--port', String(this.redisPort), '--bind', '127.0.0.1',
      '--save', '', '--appendonly', 'no', '--dir', redisDir], { log: log('redis') });
    const deadline = Date.now() + 10000;
    while (!(await canConnect(this.redisPort))) {
      if (!this.redis.alive || Date.now() > deadline) throw new Error('redis-server did not start');
      await sleep(20);
    }

    // One media node.
    this.node = this.spawn('media node', NODE_BIN, [], {
      log: log('media-node'),
      env: childEnv({ OPENVIDU_SECRET: this.secret, MEDIA_NODE_PORT: '0', MEDIA_NODE_ADDRESS: '127.0.0.1',
        RUST_LOG: rustLog }),
    });
    this.nodeUrl = await this.node.ready('openvidu-media-node listening on ');

    // The masters, one after the other: each one's id is the member it adds to the set of masters.
    this.lbPort = await freePort();
    this.lbUrl = `https://127.0.0.1:${this.lbPort}`;
    this.publicUrl = this.lbUrl;
    for (let i = 0; i < masterCount; i++) {
      const before = new Set(await this.smembers(`${PREFIX}masters`));
      const proc = this.spawn(`master m${i}`, SERVER_BIN, [], {
        log: log(`master-m${i}`),
        env: childEnv(Object.assign({
          OPENVIDU_SECRET: this.secret,
          OPENVIDU_HTTPS: 'false',
          HTTPS_PORT: '0',
          SERVER_ADDRESS: '127.0.0.1',
          OPENVIDU_PUBLICURL: this.publicUrl,
          OPENVIDU_HA_REDIS_URL: `redis://127.0.0.1:${this.redisPort}`,
          KMS_URIS: JSON.stringify([this.nodeUrl]),
          OPENVIDU_MEDIA_NODE_GRACE: '1',
          RUST_LOG: rustLog,
        }, masterEnv)),
      });
      const url = await proc.ready('openvidu-server listening on ');
      const added = (await this.smembers(`${PREFIX}masters`)).filter((m) => !before.has(m));
      if (added.length !== 1) throw new Error(`master m${i}: cannot tell its id (new masters: ${added})`);
      this.masters.push({ index: i, name: `m${i}`, id: added[0], url, proc });
    }

    // HAProxy terminating TLS in front of the masters (tests/ha/cluster.rs' settings otherwise).
    const crt = path.join(this.dir, 'lb.crt');
    const key = path.join(this.dir, 'lb.key');
    execFileSync(which('openssl'), ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1',
      '-nodes', '-keyout', key, '-out', crt, '-days', '2', '-subj', '/CN=localhost',
      '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1'], { stdio: 'ignore' });
    const pem = path.join(this.dir, 'lb.pem');
    fs.writeFileSync(pem, Buffer.concat([fs.readFileSync(crt), fs.readFileSync(key)]));
    const auth = Buffer.from(`OPENVIDUAPP:${this.secret}`).toString('base64');
    const servers = this.masters.map((m) => `  server ${m.name} ${m.url.replace(/^http:\/\//, '')} check`);
    const cfg = [
      'global', '  maxconn 2000', '  log stdout format raw local0',
      'defaults', '  mode http', '  log global', '  option httplog', '  timeout connect 2s', '  timeout client 60s',
      '  timeout server 60s', '  timeout tunnel 1h', '  retries 3', '  option redispatch',
      'frontend fe', `  bind 127.0.0.1:${this.lbPort} ssl crt ${pem}`, '  default_backend masters',
      'backend masters', '  balance roundrobin', '  option httpchk',
      `  http-check send meth GET uri /openvidu/api/health hdr Authorization "Basic ${auth}"`,
      '  default-server inter 300ms fall 2 rise 1', ...servers, '',
    ].join('\n');
    const cfgFile = path.join(this.dir, 'haproxy.cfg');
    fs.writeFileSync(cfgFile, cfg);
    this.lb = this.spawn('haproxy', which('haproxy'), ['-db', '-f', cfgFile], { log: log('haproxy') });
    const lbDeadline = Date.now() + 10000;
    while (!(await canConnect(this.lbPort))) {
      if (!this.lb.alive || Date.now() > lbDeadline) throw new Error('haproxy did not start');
      await sleep(20);
    }
    // Through HAProxy, every master answers (roundrobin: as many health calls as masters, all 200).
    const hDeadline = Date.now() + 10000;
    for (;;) {
      let ok = 0;
      for (let i = 0; i < this.masters.length; i++) {
        const r = await this.rest('GET', '/openvidu/api/health').catch(() => null);
        if (r && r.status === 200) ok++;
      }
      if (ok === this.masters.length) break;
      if (Date.now() > hDeadline) throw new Error('the masters are not healthy through HAProxy');
      await sleep(100);
    }
  }

  spawn(name, cmd, args, opts) {
    const p = new Proc(name, cmd, args, opts);
    this.procs.push(p);
    return p;
  }

  // redis-cli against the cluster's Redis; resolves to its raw output lines.
  redisCli(...args) {
    return new Promise((resolve, reject) => {
      execFile(which('redis-cli'), ['-h', '127.0.0.1', '-p', String(this.redisPort), '--raw', ...args],
        { timeout: 5000 }, (err, stdout) => {
          if (err) reject(err);
          else resolve(stdout.split('\n').filter((l) => l !== ''));
        });
    });
  }

  smembers(key) { return this.redisCli('SMEMBERS', key); }

  // The socket registry entry of JSON-RPC session `rpcId` (openvidu-server/src/cluster/sockets.rs):
  // { session, connection, role, master, epoch }, or null.
  async socketEntry(rpcId) {
    const [raw] = await this.redisCli('GET', `${PREFIX}rpc:${rpcId}`);
    if (!raw) return null;
    const i = raw.lastIndexOf('|');
    return Object.assign(JSON.parse(raw.slice(0, i)), { epoch: Number(raw.slice(i + 1)) });
  }

  // The registry entry of the participant of connection `connectionId` (looked up in every master's set).
  async socketOfConnection(connectionId) {
    for (const m of this.masters) {
      for (const rpcId of await this.smembers(`${PREFIX}master-sockets:${m.id}`)) {
        const e = await this.socketEntry(rpcId);
        if (e && e.connection === connectionId) return Object.assign(e, { rpcId });
      }
    }
    return null;
  }

  master(id) { return this.masters.find((m) => m.id === id); }

  // A REST call through HAProxy (Basic auth with the cluster's secret). Resolves to { status, text, json() }.
  rest(method, urlPath, body) {
    const url = new URL(urlPath, this.lbUrl);
    const headers = { Authorization: `Basic ${Buffer.from(`OPENVIDUAPP:${this.secret}`).toString('base64')}` };
    let payload;
    if (body !== undefined) {
      payload = JSON.stringify(body);
      headers['Content-Type'] = 'application/json';
      headers['Content-Length'] = Buffer.byteLength(payload);
    }
    return new Promise((resolve, reject) => {
      const req = https.request(url, { method, headers, rejectUnauthorized: false, timeout: 10000, agent: false },
        (res) => {
          const chunks = [];
          res.on('data', (d) => chunks.push(d));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            resolve({ status: res.statusCode, text, json: () => JSON.parse(text) });
          });
        });
      req.on('timeout', () => req.destroy(new Error(`${method} ${urlPath}: timed out`)));
      req.on('error', reject);
      if (payload !== undefined) req.write(payload);
      req.end();
    });
  }

  async restOk(method, urlPath, body, code = 200) {
    const r = await this.rest(method, urlPath, body);
    if (r.status !== code) throw new Error(`${method} ${urlPath}: HTTP ${r.status} (expected ${code}): ${r.text}`);
    return r;
  }

  // POST /openvidu/api/sessions through HAProxy; resolves to the session id.
  async createSession(props = {}) {
    return (await this.restOk('POST', '/openvidu/api/sessions', props)).json().id;
  }

  // POST /openvidu/api/sessions/{id}/connection; resolves to { token, connectionId }.
  async createToken(sessionId, props = {}) {
    const c = (await this.restOk('POST', `/openvidu/api/sessions/${encodeURIComponent(sessionId)}/connection`,
      props)).json();
    return { token: c.token, connectionId: c.id };
  }

  // GET /openvidu/api/sessions/{id}; the parsed session, or null on 404.
  async getSession(sessionId) {
    const r = await this.rest('GET', `/openvidu/api/sessions/${encodeURIComponent(sessionId)}`);
    if (r.status === 404) return null;
    if (r.status !== 200) throw new Error(`GET session: HTTP ${r.status}: ${r.text}`);
    return r.json();
  }

  // The last lines of every process' log (for a failing assertion).
  logs(n = 40) {
    return this.procs.map((p) => p.tail(n)).join('\n');
  }

  // Kills (SIGKILL) every process still running, then removes the folder (kept with E2E_KEEP_CLUSTER=1).
  async stop() {
    await Promise.all(this.procs.map((p) => p.kill()));
    if (process.env.E2E_KEEP_CLUSTER === '1') return;
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

module.exports = { startCluster, missing, which, SERVER_BIN, NODE_BIN, ROOT };
