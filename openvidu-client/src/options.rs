//! Options that exist only on the client side: [`TokenOptions`] (the deprecated token flow) and
//! [`SignalOptions`].

use openvidu_core::id::ConnectionId;
use openvidu_core::model::{KurentoOptions, OpenViduRole};
use openvidu_core::wire::rest::{SignalRequest, TokenRequest};

/// What a token made by the deprecated [`crate::Session::generate_token`] allows (Java's
/// `TokenOptions`).
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct TokenOptions {
    /// The participant's role (default PUBLISHER).
    pub role: OpenViduRole,
    /// Server data, visible to every participant (default `""`).
    pub data: String,
    /// Bandwidth limits and allowed filters.
    pub kurento_options: Option<KurentoOptions>,
}

impl TokenOptions {
    /// A builder starting from the defaults.
    pub fn builder() -> TokenOptionsBuilder {
        TokenOptionsBuilder::default()
    }

    /// The body of `POST /openvidu/api/tokens` for `session`.
    pub(crate) fn to_request(&self, session: &str) -> TokenRequest {
        let mut r = TokenRequest::default();
        r.session = Some(session.to_owned());
        r.role = Some(self.role);
        r.data = Some(self.data.clone());
        r.kurento_options = self.kurento_options.clone();
        r
    }
}

/// Builds [`TokenOptions`]; start with [`TokenOptions::builder`].
#[derive(Clone, Debug, Default)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct TokenOptionsBuilder(TokenOptions);

impl TokenOptionsBuilder {
    /// The participant's role.
    pub fn role(mut self, role: OpenViduRole) -> Self {
        self.0.role = role;
        self
    }

    /// Server data, visible to every participant.
    pub fn data(mut self, data: impl Into<String>) -> Self {
        self.0.data = data.into();
        self
    }

    /// Bandwidth limits and allowed filters.
    pub fn kurento_options(mut self, options: KurentoOptions) -> Self {
        self.0.kurento_options = Some(options);
        self
    }

    /// The options.
    pub fn build(self) -> TokenOptions {
        self.0
    }
}

/// A signal sent by the server to participants of a session (`POST /openvidu/api/signal`).
///
/// ```
/// use openvidu_client::SignalOptions;
/// let signal = SignalOptions::new().signal_type("chat").data("hello");
/// assert!(signal.to.is_empty()); // nobody named: everyone in the session
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SignalOptions {
    /// The receiving connections; empty (default) sends to every connection of the session.
    pub to: Vec<ConnectionId>,
    /// The signal type, forwarded verbatim (clients see the event `signal:<type>`).
    pub signal_type: Option<String>,
    /// The payload.
    pub data: Option<String>,
}

impl SignalOptions {
    /// A broadcast signal with no type and no data.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sends only to these connections.
    pub fn to(mut self, connections: impl IntoIterator<Item = ConnectionId>) -> Self {
        self.to = connections.into_iter().collect();
        self
    }

    /// Sets the signal type.
    pub fn signal_type(mut self, signal_type: impl Into<String>) -> Self {
        self.signal_type = Some(signal_type.into());
        self
    }

    /// Sets the payload.
    pub fn data(mut self, data: impl Into<String>) -> Self {
        self.data = Some(data.into());
        self
    }

    /// The body of `POST /openvidu/api/signal` for `session`.
    pub(crate) fn to_request(&self, session: &str) -> SignalRequest {
        let mut r = SignalRequest::default();
        r.session = Some(session.to_owned());
        r.to = Some(self.to.iter().map(|c| c.to_string()).collect());
        r.signal_type = self.signal_type.clone();
        r.data = self.data.clone();
        r
    }
}
