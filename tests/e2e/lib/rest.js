'use strict';
// What every e2e suite needs to talk to the server that run.sh started: OV_URL / OV_SECRET, Basic auth,
// unique ids, and raw HTTPS requests that accept the self-signed certificate.

const https = require('node:https');
const crypto = require('node:crypto');

const OV_URL = process.env.OV_URL;
const OV_SECRET = process.env.OV_SECRET;
if (!OV_URL || !OV_SECRET) {
  throw new Error('OV_URL and OV_SECRET must be set (start the suite with its run.sh)');
}

function basicAuth(secret = OV_SECRET) {
  return 'Basic ' + Buffer.from('OPENVIDUAPP:' + secret).toString('base64');
}

// Unique, valid customSessionId for one test.
function uniqueId(prefix) {
  return `${prefix}-${crypto.randomBytes(5).toString('hex')}`;
}

// Raw HTTPS request to the server, bypassing any SDK.
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

module.exports = { OV_URL, OV_SECRET, basicAuth, uniqueId, raw };
