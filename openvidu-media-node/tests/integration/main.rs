//! Integration tests of openvidu-media-node: a media node server in-process (or the binary as a
//! process), driven through `RemoteMediaNode` with real webrtc peers over loopback.

#[path = "../../../openvidu-media/tests/integration/peers.rs"]
mod peers;
#[allow(dead_code)]
mod support;

mod control;
mod media;
mod process;
mod reconnect;
