//! # openvidu-core
//!
//! The domain of openvidu-rs and the exact JSON of OpenVidu 2.20: identifiers, the model
//! (sessions, connections, publishers, subscribers, recordings), the wire formats of the REST API
//! and webhooks, and the state rules. It is pure: no tokio, no sockets, no files, no clock — the
//! caller passes time in.
//!
//! ## How to start
//!
//! - [`id`]: mint ids with an [`id::IdGenerator`] and parse untrusted text with `XxxId::parse`.
//! - [`model`]: plain data for [`model::Session`], [`model::Connection`], [`model::Recording`].
//! - [`wire::rest`]: turn the model into OpenVidu's JSON and back, and parse request bodies.
//! - [`wire::webhook`]: the events OpenVidu posts to webhooks and writes to the CDR.
//! - [`rules`]: who may do what, and which transitions exist.
//!
//! ```
//! use openvidu_core::id::{IdGenerator, RandomIds};
//! use openvidu_core::model::{Session, SessionProperties};
//! use openvidu_core::wire::rest::SessionJson;
//!
//! let session = Session::new(RandomIds.session_id(), 1_632_400_000_000, SessionProperties::default());
//! let json = serde_json::to_value(SessionJson::new(&session, [])).unwrap();
//! assert_eq!(json["object"], "session");
//! assert_eq!(json["sessionId"], json["id"]);
//! ```
#![deny(missing_docs)]

pub mod error;
pub mod id;
pub mod model;
pub mod rules;
pub mod wire;

pub use error::{IdError, RequestError, RuleError};
