//! The ICE username fragment (ufrag) in the texts signalling carries: an SDP's `a=ice-ufrag`
//! and a trickled candidate line's `ufrag` extension (`onIceCandidate`, `iceCandidate`). A
//! candidate naming another ufrag than the negotiated one was gathered by another peer
//! connection, e.g. the one a renegotiation replaced.

/// The first `a=ice-ufrag` of `sdp` (session or media level): the ICE ufrag of the peer that
/// wrote it. A bundled session has one.
pub fn sdp_ice_ufrag(sdp: &str) -> Option<&str> {
    sdp.lines().find_map(|l| l.trim_end().strip_prefix("a=ice-ufrag:"))
}

/// The `ufrag` extension of a candidate line (`… typ host generation 0 ufrag Xy12 …`, as Chrome
/// and openvidu-rs's participant write them): the ICE ufrag of the peer connection that
/// gathered it.
pub fn candidate_ufrag(candidate: &str) -> Option<&str> {
    let text = candidate.trim();
    let value = text.strip_prefix("candidate:").unwrap_or(text);
    // foundation component transport priority address port "typ" type, then name/value pairs.
    let mut extensions = value.split_whitespace().skip(8);
    while let (Some(name), Some(value)) = (extensions.next(), extensions.next()) {
        if name == "ufrag" {
            return Some(value);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ice_ufrag_is_read_at_session_or_media_level() {
        let both = "v=0\r\na=ice-ufrag:sess\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=ice-ufrag:media\r\n";
        assert_eq!(sdp_ice_ufrag(both), Some("sess"));
        assert_eq!(sdp_ice_ufrag("v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=ice-ufrag:media\r\n"), Some("media"));
        assert_eq!(sdp_ice_ufrag("v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"), None);
    }

    #[test]
    fn a_candidate_names_its_ufrag_in_its_extensions() {
        let chrome = "candidate:842163049 1 udp 1677729535 203.0.113.7 46154 typ srflx raddr 0.0.0.0 rport 0 generation 0 ufrag sXRf network-cost 999";
        assert_eq!(candidate_ufrag(chrome), Some("sXRf"));
        assert_eq!(
            candidate_ufrag("candidate:3 1 tcp 1518280447 10.0.0.1 9 typ host tcptype active ufrag Ab12"),
            Some("Ab12")
        );
        assert_eq!(candidate_ufrag("candidate:1 1 udp 2122260223 192.168.0.196 46243 typ host generation 0"), None);
        // Only a name in a name/value position counts, not an address or a value.
        assert_eq!(candidate_ufrag("candidate:1 1 udp 1 ufrag 9 typ host"), None);
        assert_eq!(candidate_ufrag("candidate:1 1 udp 1 10.0.0.1 9 typ host generation ufrag"), None);
        assert_eq!(candidate_ufrag(""), None);
    }
}
