//! Integration tests of the master node through real sockets: one binary, one module per concern.

mod cluster;
mod events;
mod lifecycle;
mod media_nodes;
mod signalling;

/// A raw HTTP client that trusts the server's self-signed certificate.
pub fn client(server: &openvidu_server::RunningServer) -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut b = reqwest::Client::builder();
    if let Some(pem) = server.certificate_pem() {
        b = b.add_root_certificate(reqwest::Certificate::from_pem(pem.as_bytes()).unwrap());
    }
    b.build().unwrap()
}
