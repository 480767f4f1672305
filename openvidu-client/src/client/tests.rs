use super::*;

#[test]
fn only_scheme_host_and_port_are_kept() {
    let cases = [
        ("https://openvidu.example.com:4443", "https://openvidu.example.com:4443"),
        ("https://openvidu.example.com:4443/", "https://openvidu.example.com:4443"),
        ("https://openvidu.example.com/some/path/?x=1#frag", "https://openvidu.example.com"),
        ("http://127.0.0.1:5443/openvidu/api", "http://127.0.0.1:5443"),
        ("  http://localhost:8080  ", "http://localhost:8080"),
        // Default ports are dropped, like Node's `url.host` would not show them.
        ("https://openvidu.example.com:443/", "https://openvidu.example.com"),
        ("http://openvidu.example.com:80", "http://openvidu.example.com"),
        // User info never survives.
        ("https://OPENVIDUAPP:MY_SECRET@openvidu.example.com:4443/x", "https://openvidu.example.com:4443"),
        ("HTTPS://OpenVidu.Example.COM", "https://openvidu.example.com"),
        ("http://[::1]:4443", "http://[::1]:4443"),
    ];
    for (given, kept) in cases {
        assert_eq!(base_url(given).expect(given), kept, "for {given}");
    }
}

#[test]
fn non_http_urls_are_refused_without_echoing_them() {
    for bad in [
        "",
        "openvidu.example.com",
        "localhost:4443",
        "ftp://openvidu.example.com",
        "wss://openvidu.example.com",
        "https://",
        "https://user:MY_SECRET@",
    ] {
        let e = base_url(bad).expect_err(bad);
        assert!(matches!(e, Error::Config(_)), "{bad}: {e:?}");
        assert!(!e.to_string().contains("MY_SECRET"), "{bad}: {e}");
    }
}

#[test]
fn requests_go_under_openvidu_api() {
    let ov = OpenVidu::new("https://openvidu.example.com:4443/dashboard/", "s").expect("valid");
    assert_eq!(ov.url(), "https://openvidu.example.com:4443");
}

#[test]
fn the_secret_is_never_printed() {
    let builder = OpenVidu::builder("https://OPENVIDUAPP:MY_SECRET@localhost:4443", "MY_SECRET");
    let shown = format!("{builder:?}");
    assert!(!shown.contains("MY_SECRET"), "{shown}");
    let ov = builder.build().expect("valid");
    let shown = format!("{ov:?}");
    assert!(!shown.contains("MY_SECRET"), "{shown}");
    assert!(shown.contains("https://localhost:4443"), "{shown}");
}

#[test]
fn bad_certificates_are_configuration_errors() {
    let e = OpenVidu::builder("https://localhost", "s")
        .root_certificate_pem(b"not a certificate")
        .build()
        .expect_err("no certificate in it");
    assert!(matches!(e, Error::Config(_)), "{e:?}");
}

#[test]
fn builder_options_build() {
    let ov = OpenVidu::builder("https://localhost:4443", "s")
        .danger_accept_invalid_certs(true)
        .timeout(Duration::from_secs(5))
        .build()
        .expect("valid");
    assert!(ov.active_sessions().is_empty());
}
