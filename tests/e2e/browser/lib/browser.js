'use strict';
// Debian's Chromium driven by playwright-core (no browser download), one browser per test file and one
// browser context (fresh profile, own cookies) per participant.
const { chromium } = require('playwright-core');
const { OV_URL } = require('./env');
const { startPageServer } = require('./page-server');

const CHROMIUM = process.env.CHROMIUM_BIN || '/usr/bin/chromium';
const FLAGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  '--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream', '--ignore-certificate-errors',
];

// Starts the page server/proxy and the browser. Returns { browser, pages, newClient, close }.
// target: "host:port" the browser's signalling sockets may reach (default: the server run.sh started).
async function startBrowser({ target } = {}) {
  const server = new URL(OV_URL);
  const pages = await startPageServer({ allowedTarget: target || `${server.hostname}:${server.port || 443}` });
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      ...FLAGS,
      // The signalling socket to 127.0.0.1 goes through the page server's CONNECT proxy (see page-server.js);
      // the test page itself (localhost) is fetched directly.
      `--proxy-server=${pages.proxyUrl}`,
      '--proxy-bypass-list=localhost;<-loopback>',
    ],
    timeout: 30000,
  });
  const clients = new Set();
  return {
    browser,
    pages,
    // opts.permissions: granted to the context (default camera + microphone).
    async newClient(name, url = pages.pageUrl, opts = {}) {
      const c = await Client.open(browser, name, url || pages.pageUrl, opts);
      clients.add(c);
      return c;
    },
    async close() {
      for (const c of clients) await c.close().catch(() => {});
      await browser.close().catch(() => {});
      await pages.close();
    },
  };
}

class Client {
  static async open(browser, name, url, { permissions = ['camera', 'microphone'] } = {}) {
    const context = await browser.newContext({ ignoreHTTPSErrors: true, permissions });
    const page = await context.newPage();
    const c = new Client(name, context, page);
    await page.goto(url, { waitUntil: 'load' });
    await page.waitForFunction(() => typeof window.OpenVidu === 'function', null, { timeout: 10000 });
    return c;
  }

  constructor(name, context, page) {
    this.name = name;
    this.context = context;
    this.page = page;
    this.sockets = []; // { url, closed, sent: [msg], received: [msg] }
    this.console = []; // { type, text }
    page.on('console', (m) => {
      if (m.type() === 'error' || m.type() === 'warning') this.console.push({ type: m.type(), text: m.text() });
    });
    page.on('pageerror', (e) => this.console.push({ type: 'pageerror', text: String(e && e.stack || e) }));
    page.on('websocket', (ws) => {
      const s = { url: ws.url(), closed: false, sent: [], received: [] };
      this.sockets.push(s);
      const parse = (p) => { try { return JSON.parse(p); } catch { return { unparsed: String(p) }; } };
      ws.on('framesent', (f) => s.sent.push(parse(f.payload)));
      ws.on('framereceived', (f) => s.received.push(parse(f.payload)));
      ws.on('close', () => { s.closed = true; });
    });
  }

  evaluate(fn, arg) { return this.page.evaluate(fn, arg); }

  join(token, clientData = '', opts = {}) {
    return this.page.evaluate(([t, d, o]) => window.ovt.join(t, d, o), [token, clientData, opts]);
  }
  publish(props) { return this.page.evaluate((p) => window.ovt.publish(p), props); }
  publishAudio(on) { return this.page.evaluate((v) => window.ovt.publishAudio(v), on); }
  publishVideo(on) { return this.page.evaluate((v) => window.ovt.publishVideo(v), on); }
  unpublish() { return this.page.evaluate(() => window.ovt.unpublish()); }
  signal(data, type, to) {
    return this.page.evaluate(([d, ty, to2]) => window.ovt.signal(d, ty, to2), [data, type, to]);
  }
  disconnect() { return this.page.evaluate(() => window.ovt.disconnect()); }
  subscriberStats() { return this.page.evaluate(() => window.ovt.subscriberStats()); }
  publisherStats() { return this.page.evaluate(() => window.ovt.publisherStats()); }
  events(type, match) { return this.page.evaluate(([t, m]) => window.ovt.all(t, m), [type, match || {}]); }

  // Waits for an event of `type` whose fields equal `match`; resolves to it.
  async waitEvent(type, match = {}, timeout = 10000) {
    try {
      const h = await this.page.waitForFunction(([t, m]) => window.ovt.find(t, m), [type, match],
        { timeout, polling: 50 });
      return await h.jsonValue();
    } catch (e) {
      const seen = await this.page.evaluate(() => window.ovt.events.map((x) => x.type)).catch(() => []);
      throw new Error(`${this.name}: no '${type}' event matching ${JSON.stringify(match)} within ${timeout} ms ` +
        `(events seen: ${JSON.stringify(seen)})`);
    }
  }

  // JSON-RPC requests the page sent (all sockets), optionally of one method.
  requests(method) {
    const out = [];
    for (const s of this.sockets) for (const m of s.sent) if (m.method && (!method || m.method === method)) out.push(m);
    return out;
  }

  // The response received for request `req` (matched by id on the same socket), or undefined.
  responseTo(req) {
    for (const s of this.sockets) {
      if (!s.sent.includes(req)) continue;
      return s.received.find((m) => m.id === req.id && !m.method);
    }
    return undefined;
  }

  // Requests never answered on a socket that is still open (socket loss explains the others).
  unanswered() {
    const out = [];
    for (const s of this.sockets) {
      if (s.closed) continue;
      const answered = new Set(s.received.filter((m) => m.id !== undefined && !m.method).map((m) => m.id));
      for (const m of s.sent) if (m.id !== undefined && !answered.has(m.id)) out.push(m);
    }
    return out;
  }

  // Error responses received, with the method that caused them.
  errorResponses() {
    const out = [];
    for (const s of this.sockets) {
      for (const m of s.received) {
        if (!m.error) continue;
        const req = s.sent.find((r) => r.id === m.id);
        out.push({ method: req && req.method, error: m.error });
      }
    }
    return out;
  }

  // Server -> client notifications received (all sockets), optionally of one method.
  notifications(method) {
    const out = [];
    for (const s of this.sockets) {
      for (const m of s.received) if (m.method && (!method || m.method === method)) out.push(m);
    }
    return out;
  }

  diagnostics() {
    const lines = [`--- ${this.name}: ${this.sockets.length} signalling socket(s)`];
    const un = this.unanswered().filter((m) => m.method !== 'ping');
    if (un.length) lines.push(`unanswered: ${un.map((m) => m.method).join(', ')}`);
    for (const e of this.errorResponses()) lines.push(`error response to ${e.method}: ${JSON.stringify(e.error)}`);
    for (const c of this.console.slice(-30)) lines.push(`console.${c.type}: ${c.text.slice(0, 400)}`);
    return lines.join('\n');
  }

  async close() {
    await this.context.close();
  }
}

// Runs `fn(env)` with a fresh browser; on failure, appends every client's diagnostics to the error.
// Always closes the browser. Use one per test (a browser starts in well under a second).
// options: those of startBrowser.
async function withBrowser(t, fn, options = {}) {
  const env = await startBrowser(options);
  const made = [];
  const newClient = env.newClient.bind(env);
  env.newClient = async (...a) => { const c = await newClient(...a); made.push(c); return c; };
  try {
    await fn(env);
    for (const c of made) {
      const un = c.unanswered().filter((m) => m.method !== 'ping');
      if (un.length) t.diagnostic(`${c.name}: requests never answered: ${un.map((m) => m.method).join(', ')}`);
      // E2E_VERBOSE=1: each client's console warnings/errors and RPC errors, even when the test passed.
      if (process.env.E2E_VERBOSE === '1') for (const line of c.diagnostics().split('\n')) t.diagnostic(line);
    }
  } catch (e) {
    const diag = made.map((c) => c.diagnostics()).join('\n');
    e.message += `\n${diag}`;
    throw e;
  } finally {
    await env.close();
  }
}

module.exports = { startBrowser, withBrowser, FLAGS, CHROMIUM };
