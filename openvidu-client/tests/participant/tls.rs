//! `wss://` signalling: the server's certificate must be trusted (or checks turned off).

use openvidu_client::participant::{JoinOptions, Participant, ParticipantError};
use openvidu_client::{OpenVidu, SessionProperties};
use openvidu_server::Server;

#[tokio::test]
async fn wss_needs_a_trusted_certificate() {
    let server = Server::builder().https(true).start().await.expect("the server starts");
    let pem = server.certificate_pem().expect("a self-signed certificate").to_owned();
    let rest = OpenVidu::builder(server.url(), server.secret()).root_certificate_pem(pem.as_bytes()).build().unwrap();
    let session = rest.create_session(SessionProperties::builder().custom_session_id("tls").build()).await.unwrap();
    let mut tokens = Vec::new();
    for _ in 0..3 {
        tokens.push(session.create_connection(Default::default()).await.unwrap().token.unwrap());
    }
    assert!(tokens[0].starts_with("wss://"), "{}", tokens[0]);

    let untrusted = Participant::join(&tokens[0], JoinOptions::new()).await.unwrap_err();
    assert!(matches!(untrusted, ParticipantError::Socket(_)), "{untrusted}");
    let trusted = Participant::join(&tokens[0], JoinOptions::new().with_root_certificate_pem(pem.as_bytes()))
        .await
        .expect("joins when the certificate is trusted");
    let unchecked = Participant::join(&tokens[1], JoinOptions::new().with_accept_invalid_certs(true))
        .await
        .expect("joins without checks");
    assert_eq!(unchecked.remote_participants().len(), 1);
    let bad_pem = Participant::join(&tokens[2], JoinOptions::new().with_root_certificate_pem("not a PEM")).await;
    assert!(matches!(bad_pem, Err(ParticipantError::Config(_))));
    trusted.leave().await.unwrap();
    unchecked.leave().await.unwrap();
}
