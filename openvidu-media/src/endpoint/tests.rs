use super::*;

fn c(text: &str) -> IceCandidate {
    IceCandidate::new(text, Some("0".into()), Some(0))
}

#[test]
fn browser_candidates_are_accepted() {
    for ok in [
        "candidate:842163049 1 udp 1677729535 203.0.113.7 46154 typ srflx raddr 0.0.0.0 rport 0 generation 0 ufrag sXRf network-cost 999",
        "candidate:1467250027 1 udp 2122260223 192.168.0.196 46243 typ host generation 0",
        "candidate:3289912957 1 tcp 1518280447 192.168.0.196 9 typ host tcptype active generation 0",
        "1467250027 1 udp 2122260223 192.168.0.196 46243 typ host",
        "candidate:1 1 UDP 2122252543 2001:db8::1 55000 typ host",
        "candidate:2 1 udp 2113937151 0b8e4a7c-3a0e-4a8f-9d5c-3a6f1f0c1e2d.local 54400 typ host generation 0 ufrag x network-cost 999",
        // The participant client's: webrtc's candidate line plus the ufrag extension.
        "candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host ufrag AbCd",
    ] {
        assert_eq!(check_candidate(&c(ok)).map_err(|e| e.to_string()), Ok(true), "{ok}");
    }
}

#[test]
fn end_of_candidates_is_not_a_candidate() {
    for end in ["", "  ", "candidate:"] {
        assert_eq!(check_candidate(&c(end)).ok(), Some(false), "{end:?}");
    }
}

#[test]
fn malformed_candidates_are_errors() {
    let long = format!("candidate:1 1 udp 1 127.0.0.1 9 typ host {}", "x".repeat(2000));
    for bad in ["candidate:garbage", "1 1 udp", "candidate:1 1 udp notanumber 127.0.0.1 9 typ host", &long] {
        assert!(matches!(check_candidate(&c(bad)), Err(MediaError::IceCandidate(_))), "{bad}");
    }
}

#[test]
fn only_a_candidate_naming_another_ufrag_is_foreign() {
    let of = |ufrag: &str| format!("candidate:1 1 udp 2122260223 127.0.0.1 5000 typ host generation 0 ufrag {ufrag}");
    assert_eq!(foreign_ufrag(Some("mine"), &of("mine")), None);
    assert_eq!(foreign_ufrag(Some("mine"), &of("older")), Some("older"));
    // Without a ufrag on either side there is nothing to compare: the candidate is used.
    assert_eq!(foreign_ufrag(None, &of("older")), None);
    assert_eq!(foreign_ufrag(Some("mine"), "candidate:1 1 udp 2122260223 127.0.0.1 5000 typ host"), None);
}
