'use strict';
// Shared helpers for the openvidu-node-client compatibility suite.
// The server comes from OV_URL / OV_SECRET (run.sh starts one and sets them).

// The server uses a self-signed certificate; axios (inside openvidu-node-client) must accept it.
process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0';

const https = require('node:https');
const crypto = require('node:crypto');
const { OpenVidu } = require('openvidu-node-client');

const OV_URL = process.env.OV_URL;
const OV_SECRET = process.env.OV_SECRET;
if (!OV_URL || !OV_SECRET) {
  throw new Error('OV_URL and OV_SECRET must be set (use tests/e2e/node-client/run.sh)');
}

const SESSION_ID_RE = /^ses_[A-Z][A-Za-z0-9]{9}$/;
const CONNECTION_ID_RE = /^con_[A-Z][A-Za-z0-9]{9}$/;

function newOV(secret = OV_SECRET) {
  return new OpenVidu(OV_URL, secret);
}

function basicAuth(secret = OV_SECRET) {
  return 'Basic ' + Buffer.from('OPENVIDUAPP:' + secret).toString('base64');
}

// Unique, valid customSessionId for one test.
function uniqueId(prefix) {
  return `${prefix}-${crypto.randomBytes(5).toString('hex')}`;
}

// Regex for a token of session `sessionId`: wss://HOST[:PORT]?sessionId=<id>&token=tok_<16 chars>.
function tokenRe(sessionId) {
  const esc = sessionId.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return new RegExp(`^wss://[^/?]+\\?sessionId=${esc}&token=tok_[A-Z][A-Za-z0-9]{15}$`);
}

// Raw HTTPS request to the server, bypassing the SDK.
// auth: true (right secret), false (no Authorization header) or a string secret.
// Resolves to { status, headers, text, json() }.
function raw(method, path, { body, auth = true, headers = {} } = {}) {
  const url = new URL(path, OV_URL);
  const h = { ...headers };
  if (auth !== false) h.Authorization = basicAuth(auth === true ? OV_SECRET : auth);
  let payload;
  if (body !== undefined) {
    payload = typeof body === 'string' ? body : JSON.stringify(body);
    h['Content-Type'] = h['Content-Type'] || 'application/json';
    h['Content-Length'] = Buffer.byteLength(payload);
  }
  return new Promise((resolve, reject) => {
    const req = https.request(url, { method, headers: h, rejectUnauthorized: false, timeout: 10000 }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        resolve({ status: res.statusCode, headers: res.headers, text, json: () => JSON.parse(text) });
      });
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${path}: timed out`)));
    req.on('error', reject);
    if (payload !== undefined) req.write(payload);
    req.end();
  });
}

// The SDK rejects HTTP failures with an Error whose message is the status code as text.
function status(code) {
  return { message: String(code) };
}

function sameUrl(a, b) {
  return String(a).replace(/\/+$/, '') === String(b).replace(/\/+$/, '');
}

module.exports = { OV_URL, OV_SECRET, SESSION_ID_RE, CONNECTION_ID_RE, newOV, basicAuth, uniqueId, tokenRe, raw, status, sameUrl };
