'use strict';
// openvidu-rs demo: join a session by name, publish camera + microphone, show every remote stream.
// Tokens come from the server's demo endpoint: POST /demo/token {"session": name} -> {"token": "..."}.
(function () {
  var $ = function (id) { return document.getElementById(id); };
  var OV = null;
  var session = null;
  var publisher = null;

  $('user-name').value = 'Participant' + Math.floor(Math.random() * 1000);

  function setState(state) { document.body.dataset.state = state; }

  function status(text, isError) {
    $('status').textContent = text || '';
    $('status').className = isError ? 'error' : '';
  }

  function describe(err) {
    if (!err) return 'unknown error';
    if (typeof err === 'string') return err;
    return (err.name ? err.name + ': ' : '') + (err.message || JSON.stringify(err));
  }

  // The name a participant joined with: its clientData is {"clientData": name}; the server may append
  // "%/%" + serverData (OpenVidu's full metadata).
  function nameOf(connection) {
    var data = (connection && connection.data) || '';
    var client = data.split('%/%')[0];
    try { return JSON.parse(client).clientData || client; } catch (e) { return client; }
  }

  async function getToken(sessionName) {
    var res = await fetch('/demo/token', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ session: sessionName }),
    });
    var text = await res.text();
    if (!res.ok) throw new Error('POST /demo/token: HTTP ' + res.status + (text ? ' ' + text : ''));
    return JSON.parse(text).token;
  }

  function addRemoteTile(stream) {
    var tile = document.createElement('div');
    tile.className = 'tile remote';
    tile.dataset.streamId = stream.streamId;
    tile.dataset.connectionId = stream.connection.connectionId;
    var name = document.createElement('span');
    name.className = 'name';
    name.textContent = nameOf(stream.connection);
    tile.appendChild(name);
    $('grid').appendChild(tile);
    return tile;
  }

  function removeRemoteTile(stream) {
    var tile = document.querySelector('.tile.remote[data-stream-id="' + CSS.escape(stream.streamId) + '"]');
    if (tile) tile.remove();
  }

  function resetUi(message, isError) {
    document.querySelectorAll('.tile.remote').forEach(function (t) { t.remove(); });
    document.querySelectorAll('#local video').forEach(function (v) { v.remove(); });
    $('room').hidden = true;
    $('join-form').hidden = false;
    $('join').disabled = false;
    $('session-title').textContent = '';
    delete document.body.dataset.connectionId;
    session = null;
    publisher = null;
    OV = null;
    setState('idle');
    status(message, isError);
  }

  async function join(sessionName, userName) {
    $('join').disabled = true;
    setState('joining');
    status('Joining ' + sessionName + '…');
    try {
      var token = await getToken(sessionName);
      OV = new OpenVidu();
      session = OV.initSession();

      session.on('streamCreated', function (event) {
        var tile = addRemoteTile(event.stream);
        // Inserts a <video> into the tile and plays the remote stream.
        session.subscribe(event.stream, tile, { insertMode: 'PREPEND' });
      });
      session.on('streamDestroyed', function (event) { removeRemoteTile(event.stream); });
      session.on('sessionDisconnected', function (event) {
        if (event.reason === 'disconnect') resetUi('You left the session.');
        else resetUi('Disconnected: ' + event.reason, true);
      });
      session.on('reconnecting', function () { status('Connection lost, reconnecting…', true); });
      session.on('reconnected', function () { status('Reconnected.'); });
      session.on('exception', function (e) { console.warn('OpenVidu exception', e.name, e.message); });

      await session.connect(token, { clientData: userName });
      document.body.dataset.connectionId = session.connection.connectionId;
      $('join-form').hidden = true;
      $('room').hidden = false;
      $('session-title').textContent = sessionName;
      $('local-name').textContent = userName;
      setState('joined');
      status('Connected as ' + userName + '. Starting camera…');

      publisher = await OV.initPublisherAsync($('local'), {
        audioSource: undefined, videoSource: undefined, publishAudio: true, publishVideo: true,
        resolution: '640x480', frameRate: 30, insertMode: 'PREPEND', mirror: true,
      });
      await session.publish(publisher);
      document.body.dataset.published = 'true';
      status('Connected as ' + userName + ' and publishing.');
    } catch (err) {
      console.error(err);
      if (session && session.connection) {
        // Joined, but the camera or the publication failed: stay in the session as a viewer.
        status('Joined, but publishing failed: ' + describe(err), true);
      } else {
        if (session) session.disconnect();
        resetUi('Could not join: ' + describe(err), true);
      }
    }
  }

  $('join-form').addEventListener('submit', function (e) {
    e.preventDefault();
    join($('session-name').value.trim(), $('user-name').value.trim());
  });

  $('leave').addEventListener('click', function () {
    if (session) session.disconnect(); // fires sessionDisconnected (reason "disconnect"), which resets the page
  });

  window.addEventListener('beforeunload', function () {
    if (session) session.disconnect();
  });
})();
