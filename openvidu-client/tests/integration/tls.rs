//! TLS: trusting the server's self-signed certificate, refusing it, and the development escape
//! hatch.

use openvidu_client::{Error, OpenVidu, SessionProperties};

use crate::{Harness, SECRET, Setup};

async fn https() -> Harness {
    Harness::with(Setup { https: true, recording: true }).await
}

#[tokio::test]
async fn a_trusted_self_signed_certificate_works() {
    let h = https().await;
    assert!(h.server.url().starts_with("https://"), "{}", h.server.url());
    // The harness's client trusts the certificate through `root_certificate_pem`.
    let s = h.client.create_session(SessionProperties::default()).await.expect("created over TLS");
    assert!(!h.client.fetch().await.expect("fetched over TLS"));
    s.close().await.expect("closed over TLS");
}

#[tokio::test]
async fn an_untrusted_certificate_is_a_transport_error() {
    let h = https().await;
    let client = OpenVidu::new(h.server.url(), SECRET).expect("a client");
    let e = client.fetch().await.expect_err("the certificate is not trusted");
    assert!(matches!(e, Error::Transport(_)), "{e:?}");
    assert_eq!(e.status(), None);
    assert!(!e.is_timeout());
}

#[tokio::test]
async fn accepting_invalid_certificates_works_for_development() {
    let h = https().await;
    let client = OpenVidu::builder(h.server.url(), SECRET).danger_accept_invalid_certs(true).build().expect("a client");
    client.create_session(SessionProperties::default()).await.expect("created");
}

#[tokio::test]
async fn a_plain_http_client_of_an_https_server_fails_cleanly() {
    let h = https().await;
    let url = h.server.url().replacen("https://", "http://", 1);
    let client = OpenVidu::new(&url, SECRET).expect("a client");
    let e = client.fetch().await.expect_err("TLS expected");
    assert!(!e.to_string().contains(SECRET), "{e}");
}
