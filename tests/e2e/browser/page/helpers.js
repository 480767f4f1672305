'use strict';
// Test helpers exposed on window.ovt, driven by the Node tests through playwright-core.
// Everything they return is plain JSON (it crosses the CDP boundary).
(function () {
  var events = [];
  var state = { OV: null, session: null, publisher: null, subscribers: new Map() };

  function record(type, fields) {
    var e = Object.assign({ type: type, t: Date.now() }, fields || {});
    events.push(e);
    return e;
  }

  function matches(e, type, match) {
    if (e.type !== type) return false;
    var keys = Object.keys(match || {});
    for (var i = 0; i < keys.length; i++) {
      if (e[keys[i]] !== match[keys[i]]) return false;
    }
    return true;
  }

  function errorText(err) {
    if (err == null) return String(err);
    if (typeof err === 'string') return err;
    var s = (err.name ? err.name + ': ' : '') + (err.message || '');
    if (err.code !== undefined) s += ' (code ' + err.code + ')';
    return s || JSON.stringify(err);
  }

  function subscribeTo(stream) {
    var div = document.createElement('div');
    div.className = 'subscriber';
    div.dataset.streamId = stream.streamId;
    document.getElementById('subscribers').appendChild(div);
    var sub = state.session.subscribe(stream, div);
    state.subscribers.set(stream.streamId, sub);
    sub.on('streamPlaying', function () {
      record('streamPlaying', { streamId: stream.streamId, connectionId: stream.connection.connectionId });
    });
    // subscribe() reports negotiation failures asynchronously through its completion handler.
    return sub;
  }

  async function inboundOf(pc) {
    var video = null, audio = null;
    var report = await pc.getStats();
    report.forEach(function (s) {
      if (s.type !== 'inbound-rtp') return;
      if (s.kind === 'video') {
        video = { framesDecoded: s.framesDecoded || 0, packetsReceived: s.packetsReceived || 0,
          bytesReceived: s.bytesReceived || 0, frameWidth: s.frameWidth || 0, frameHeight: s.frameHeight || 0,
          codec: (s.codecId && report.get(s.codecId) && report.get(s.codecId).mimeType) || null };
      } else if (s.kind === 'audio') {
        audio = { totalSamplesReceived: s.totalSamplesReceived || 0, packetsReceived: s.packetsReceived || 0,
          bytesReceived: s.bytesReceived || 0 };
      }
    });
    return { video: video, audio: audio };
  }

  window.ovt = {
    events: events,

    // First recorded event of `type` whose fields equal those of `match`, or null.
    find: function (type, match) {
      for (var i = 0; i < events.length; i++) if (matches(events[i], type, match)) return events[i];
      return null;
    },
    all: function (type, match) {
      return events.filter(function (e) { return matches(e, type, match); });
    },

    // Session.connect(token, clientData). opts.subscribe (default true): subscribe to every streamCreated.
    join: async function (token, clientData, opts) {
      opts = opts || {};
      var OV = new OpenVidu();
      var session = OV.initSession();
      state.OV = OV;
      state.session = session;
      session.on('connectionCreated', function (e) {
        record('connectionCreated', { connectionId: e.connection.connectionId, data: e.connection.data,
          local: !!session.connection && e.connection.connectionId === session.connection.connectionId });
      });
      session.on('connectionDestroyed', function (e) {
        record('connectionDestroyed', { connectionId: e.connection.connectionId, reason: e.reason });
      });
      session.on('streamCreated', function (e) {
        record('streamCreated', { streamId: e.stream.streamId, connectionId: e.stream.connection.connectionId,
          hasAudio: e.stream.hasAudio, hasVideo: e.stream.hasVideo, typeOfVideo: e.stream.typeOfVideo });
        if (opts.subscribe !== false) subscribeTo(e.stream);
      });
      session.on('streamDestroyed', function (e) {
        record('streamDestroyed', { streamId: e.stream.streamId, reason: e.reason });
      });
      session.on('signal', function (e) {
        record('signal', { signalType: e.type, data: e.data, from: e.from ? e.from.connectionId : null });
      });
      session.on('signal:chat', function (e) {
        record('signal:chat', { signalType: e.type, data: e.data, from: e.from ? e.from.connectionId : null });
      });
      session.on('streamPropertyChanged', function (e) {
        record('streamPropertyChanged', { streamId: e.stream.streamId, changedProperty: e.changedProperty,
          newValue: e.newValue, oldValue: e.oldValue, reason: e.reason,
          local: !!state.publisher && e.stream === state.publisher.stream });
      });
      session.on('recordingStarted', function (e) { record('recordingStarted', { id: e.id, name: e.name }); });
      session.on('recordingStopped', function (e) {
        record('recordingStopped', { id: e.id, name: e.name, reason: e.reason });
      });
      session.on('sessionDisconnected', function (e) { record('sessionDisconnected', { reason: e.reason }); });
      session.on('reconnecting', function () { record('reconnecting'); });
      session.on('reconnected', function () { record('reconnected'); });
      session.on('exception', function (e) {
        record('exception', { name: e.name, message: e.message, origin: e.origin && e.origin.streamId });
      });
      await session.connect(token, clientData);
      return {
        connectionId: session.connection.connectionId,
        rpcSessionId: session.connection.rpcSessionId,
        sessionId: session.sessionId,
        role: session.openvidu.role,
        mediaServer: session.openvidu.mediaServer,
        finalUserId: session.openvidu.finalUserId,
        capabilities: session.capabilities,
      };
    },

    // Publishes the fake camera + microphone; resolves to the stream id.
    publish: async function (props) {
      var publisher = await state.OV.initPublisherAsync(document.getElementById('publisher'), Object.assign({
        audioSource: undefined, videoSource: undefined, publishAudio: true, publishVideo: true,
        resolution: '320x240', frameRate: 15, insertMode: 'APPEND', mirror: false,
      }, props || {}));
      state.publisher = publisher;
      await state.session.publish(publisher);
      record('published', { streamId: publisher.stream.streamId });
      return publisher.stream.streamId;
    },

    // Publisher.publishAudio / publishVideo (mute and unmute; signalled through streamPropertyChanged).
    publishAudio: function (on) { state.publisher.publishAudio(on); },
    publishVideo: function (on) { state.publisher.publishVideo(on); },

    unpublish: function () {
      state.session.unpublish(state.publisher);
      state.publisher = null;
    },

    // Session.signal; `to` is a list of connection ids (resolved to Connection objects), [] = broadcast.
    signal: async function (data, type, to) {
      var session = state.session;
      var targets = (to || []).map(function (id) {
        if (session.connection.connectionId === id) return session.connection;
        var c = session.remoteConnections.get(id);
        if (!c) throw new Error('unknown connection ' + id);
        return c;
      });
      await session.signal({ data: data, type: type, to: targets });
    },

    disconnect: function () { state.session.disconnect(); },

    // Closes the signalling WebSocket from the client side without leaveRoom (the library reconnects).
    closeSocket: function () { state.OV.jsonRpcClient.forceClose(); },
    wsReadyState: function () { return state.OV.getWsReadyState(); },

    // Inbound RTP counters of every subscriber, read from its RTCPeerConnection.
    subscriberStats: async function () {
      var out = [];
      for (var entry of state.subscribers) {
        var sub = entry[1];
        var pc = sub.stream.getRTCPeerConnection && sub.stream.getRTCPeerConnection();
        var item = { streamId: entry[0], connectionId: sub.stream.connection.connectionId, iceState: null,
          connectionState: null, video: null, audio: null, videoWidth: 0, videoHeight: 0 };
        if (pc) {
          item.iceState = pc.iceConnectionState;
          item.connectionState = pc.connectionState;
          Object.assign(item, await inboundOf(pc));
        }
        var v = sub.videos && sub.videos[0] && sub.videos[0].video;
        if (v) { item.videoWidth = v.videoWidth; item.videoHeight = v.videoHeight; }
        out.push(item);
      }
      return out;
    },

    // Outbound RTP counters of the local publisher.
    publisherStats: async function () {
      var pub = state.publisher;
      if (!pub) return null;
      var pc = pub.stream.getRTCPeerConnection();
      var out = { iceState: pc.iceConnectionState, connectionState: pc.connectionState, video: null, audio: null };
      (await pc.getStats()).forEach(function (s) {
        if (s.type === 'outbound-rtp') {
          out[s.kind] = { packetsSent: s.packetsSent || 0, bytesSent: s.bytesSent || 0, framesEncoded: s.framesEncoded };
        }
      });
      return out;
    },

    errorText: errorText,
  };
})();
