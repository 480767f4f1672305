//! Serde types whose JSON is byte for byte the shape of OpenVidu 2.20.

pub mod ice;
pub mod media_node;
pub mod recording;
pub mod rest;
pub mod rpc;
pub mod webhook;
