//! A backend's integration test, in miniature: start a complete OpenVidu-compatible server
//! in-process on a free port, drive it with the REST client, stop it by dropping it.
//!
//! Run with `cargo run --example embedded_server`. Expect lines like:
//!
//! ```text
//! server: https://127.0.0.1:41234 (secret ...)
//! session: ses_Hk3...
//! connection con_Q1... (PUBLISHER, pending) token wss://127.0.0.1:41234?sessionId=ses_Hk3...&token=tok_...
//! sessions on the server: 1
//! stopped
//! ```

use openvidu::client::{ConnectionProperties, OpenVidu, OpenViduRole, SessionProperties};
use openvidu::server::Server;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // One call: TLS with a fresh self-signed certificate, random secret, port chosen by the OS.
    let server = Server::builder().start().await?;
    println!("server: {} (secret {})", server.url(), server.secret());

    let pem = server.certificate_pem().ok_or("no certificate")?.as_bytes().to_vec();
    let openvidu = OpenVidu::builder(server.url(), server.secret()).root_certificate_pem(&pem).build()?;

    let session = openvidu.create_session(SessionProperties::default()).await?;
    println!("session: {}", session.id());
    let props = ConnectionProperties::builder().role(OpenViduRole::Publisher).data("user-1").build();
    let connection = session.create_connection(props).await?;
    println!(
        "connection {} ({:?}, {:?}) token {}",
        connection.id,
        connection.properties.role,
        connection.status(),
        connection.token.as_deref().unwrap_or("")
    );
    openvidu.fetch().await?;
    println!("sessions on the server: {}", openvidu.active_sessions().len());

    drop(server);
    println!("stopped");
    Ok(())
}
