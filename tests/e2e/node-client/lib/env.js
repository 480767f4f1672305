'use strict';
// Shared helpers for the openvidu-node-client compatibility suite.
// The server comes from OV_URL / OV_SECRET (run.sh starts one and sets them).

// The server uses a self-signed certificate; axios (inside openvidu-node-client) must accept it.
process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0';

const { OpenVidu } = require('openvidu-node-client');

const { OV_URL, OV_SECRET, basicAuth, uniqueId, raw } = require('../../lib/rest');

const SESSION_ID_RE = /^ses_[A-Z][A-Za-z0-9]{9}$/;
const CONNECTION_ID_RE = /^con_[A-Z][A-Za-z0-9]{9}$/;

function newOV(secret = OV_SECRET) {
  return new OpenVidu(OV_URL, secret);
}

// Regex for a token of session `sessionId`: wss://HOST[:PORT]?sessionId=<id>&token=tok_<16 chars>.
function tokenRe(sessionId) {
  const esc = sessionId.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return new RegExp(`^wss://[^/?]+\\?sessionId=${esc}&token=tok_[A-Z][A-Za-z0-9]{15}$`);
}

// The SDK rejects HTTP failures with an Error whose message is the status code as text.
function status(code) {
  return { message: String(code) };
}

function sameUrl(a, b) {
  return String(a).replace(/\/+$/, '') === String(b).replace(/\/+$/, '');
}

module.exports = { OV_URL, OV_SECRET, SESSION_ID_RE, CONNECTION_ID_RE, newOV, basicAuth, uniqueId, tokenRe, raw, status, sameUrl };
