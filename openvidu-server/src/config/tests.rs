use super::*;

fn parse(args: &[&str]) -> Result<Config, String> {
    let mut full = vec!["openvidu-server", "--openvidu-secret", "S3cret"];
    full.extend_from_slice(args);
    let a = Args::try_parse_from(full).map_err(|e| e.to_string())?;
    Config::try_from(a).map_err(|e| e.to_string())
}

#[test]
fn defaults_are_openvidus() {
    let c = parse(&[]).unwrap();
    assert_eq!(c.port, 4443);
    assert!(c.https);
    assert!(!c.recording);
    assert_eq!(c.video_bandwidth, [1000, 300, 1000, 300]);
    assert_eq!(c.garbage_interval, Some(Duration::from_secs(900)));
    assert_eq!(c.forced_video_codec, VideoCodec::Vp8);
}

#[test]
fn bad_values_name_the_setting() {
    let e = parse(&["--openvidu-webhook", "true"]).unwrap_err();
    assert!(e.contains("OPENVIDU_WEBHOOK_ENDPOINT"), "{e}");
    let e = parse(&[
        "--openvidu-webhook",
        "true",
        "--openvidu-webhook-endpoint",
        "http://x/",
        "--openvidu-webhook-events",
        "[\"nodeRecovered\"]",
    ])
    .unwrap_err();
    assert!(e.contains("OPENVIDU_WEBHOOK_EVENTS"), "{e}");
    let e = parse(&[
        "--openvidu-webhook",
        "true",
        "--openvidu-webhook-endpoint",
        "http://x/",
        "--openvidu-webhook-headers",
        "[\"NoColon\"]",
    ])
    .unwrap_err();
    assert!(e.contains("OPENVIDU_WEBHOOK_HEADERS"), "{e}");
    let e = parse(&["--openvidu-streams-forced-video-codec", "AV1"]).unwrap_err();
    assert!(e.contains("OPENVIDU_STREAMS_FORCED_VIDEO_CODEC"), "{e}");
    let e = parse(&["--openvidu-publicurl", "ftp://x"]).unwrap_err();
    assert!(e.contains("OPENVIDU_PUBLICURL"), "{e}");
    assert!(parse(&["--https-port", "99999"]).is_err());
    assert!(parse(&["--openvidu-https", "maybe"]).is_err());
    let a = Args::try_parse_from(["openvidu-server", "--openvidu-secret", "bad secret"]).unwrap();
    assert!(Config::try_from(a).unwrap_err().to_string().contains("OPENVIDU_SECRET"));
}

#[test]
fn webhook_settings_parse() {
    let c = parse(&[
        "--openvidu-webhook",
        "true",
        "--openvidu-webhook-endpoint",
        "http://127.0.0.1:7777/hook",
        "--openvidu-webhook-headers",
        "[\"Authorization: Basic abc\"]",
        "--openvidu-webhook-events",
        "[\"sessionCreated\",\"signalSent\"]",
    ])
    .unwrap();
    let w = c.webhook.unwrap();
    assert_eq!(w.headers, vec![("Authorization".to_owned(), "Basic abc".to_owned())]);
    assert_eq!(w.events, vec![EventType::SessionCreated, EventType::SignalSent]);
}

#[test]
fn trusted_proxy_networks() {
    let c = parse(&["--openvidu-trusted-proxies", "10.0.0.0/8, 127.0.0.1,::1/128"]).unwrap();
    let inside = |ip: &str| c.trusted_proxies.iter().any(|n| n.contains(ip.parse().unwrap()));
    assert!(inside("10.1.2.3"));
    assert!(inside("127.0.0.1"));
    assert!(inside("::ffff:127.0.0.1"));
    assert!(inside("::1"));
    assert!(!inside("11.0.0.1"));
    assert!(!inside("127.0.0.2"));
    assert!(parse(&["--openvidu-trusted-proxies", "10.0.0.0/33"]).unwrap_err().contains("OPENVIDU_TRUSTED_PROXIES"));
}
