//! Integration tests of openvidu-media: real webrtc peers over loopback, in one process, talking
//! to a `LocalMediaNode`.

mod peers;
mod support;

mod direct;
mod errors;
mod ice;
mod node;
mod publish;
mod subscribe;
mod worker;
