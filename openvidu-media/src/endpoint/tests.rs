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

/// Two ICE agents of the `rtc` crate joined in memory, on a clock of their own: the node's
/// (controlled, with the node's timeouts) and a client's (controlling, the crate's defaults).
mod ice_pace {
    use std::net::SocketAddr;
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use bytes::BytesMut;
    use rtc::ice::agent::Agent;
    use rtc::ice::agent::agent_config::AgentConfig;
    use rtc::ice::candidate::CandidateConfig;
    use rtc::ice::candidate::candidate_host::CandidateHostConfig;
    use rtc::ice::mdns::MulticastDnsMode;
    use rtc::ice::state::ConnectionState;
    use rtc::ice::{Credentials, Event};
    use rtc::sansio::Protocol;
    use rtc::shared::{TransportContext, TransportMessage, TransportProtocol};

    use crate::config::MediaConfig;

    struct Side {
        agent: Agent,
        addr: SocketAddr,
        state: ConnectionState,
        /// Times its deadline came due: the wake-ups of the task that drives it.
        wakes: usize,
        /// STUN messages it sent.
        sent: usize,
        /// Of those, Binding requests (its own checks; the rest are answers to the other side's).
        requests: usize,
        /// Whether what it sends reaches the other side.
        heard: bool,
        /// When it last received something.
        received: Instant,
    }

    impl Side {
        fn new(now: Instant, config: AgentConfig, port: u16) -> Self {
            let config = AgentConfig { multicast_dns_mode: MulticastDnsMode::Disabled, ..config };
            let provider = rtc::crypto::default_provider().expect("a crypto provider");
            let agent = Agent::new(now, Arc::new(config), provider).expect("an agent");
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            let mut side = Self {
                agent,
                addr,
                state: ConnectionState::New,
                wakes: 0,
                sent: 0,
                requests: 0,
                heard: true,
                received: now,
            };
            side.agent.add_local_candidate(side.candidate()).expect("added");
            side
        }

        /// Its one host candidate.
        fn candidate(&self) -> rtc::ice::candidate::Candidate {
            let host = CandidateHostConfig {
                base_config: CandidateConfig {
                    network: "udp".into(),
                    address: self.addr.ip().to_string(),
                    port: self.addr.port(),
                    component: 1,
                    ..Default::default()
                },
                ..Default::default()
            };
            host.new_candidate_host().expect("a candidate")
        }

        /// Starts counting wake-ups and messages anew.
        fn recount(&mut self) {
            (self.wakes, self.sent, self.requests) = (0, 0, 0);
        }

        fn events(&mut self) {
            while let Some(e) = self.agent.poll_event() {
                if let Event::ConnectionStateChange(state) = e.event {
                    self.state = state;
                }
            }
        }
    }

    /// Delivers what `from` sent to `to` (unless it is not heard): whether it sent anything.
    fn deliver(now: Instant, from: &mut Side, to: &mut Side) -> bool {
        let mut moved = false;
        while let Some(out) = from.agent.poll_write() {
            moved = true;
            from.sent += 1;
            // A STUN message type of 0x0001: a Binding request.
            if out.message.starts_with(&[0x00, 0x01]) {
                from.requests += 1;
            }
            if !from.heard {
                continue;
            }
            let transport = TransportContext {
                local_addr: to.addr,
                peer_addr: from.addr,
                ecn: None,
                transport_protocol: TransportProtocol::UDP,
            };
            let message = BytesMut::from(&out.message[..]);
            to.agent.handle_read(TransportMessage { now, transport, message }).expect("read");
            to.received = now;
        }
        moved
    }

    /// Delivers what each side sent to the other, until neither sends.
    fn exchange(now: Instant, a: &mut Side, b: &mut Side) {
        loop {
            let moved = deliver(now, a, b) | deliver(now, b, a);
            a.events();
            b.events();
            if !moved {
                return;
            }
        }
    }

    /// Runs both agents' timers until `until`, in order, delivering what they send.
    fn run(now: &mut Instant, until: Instant, a: &mut Side, b: &mut Side) {
        loop {
            exchange(*now, a, b);
            let next = [a.agent.poll_timeout(), b.agent.poll_timeout()].into_iter().flatten().min();
            let Some(next) = next.filter(|&next| next <= until) else {
                *now = until;
                return;
            };
            *now = next.max(*now);
            for side in [&mut *a, &mut *b] {
                if side.agent.poll_timeout().is_some_and(|due| due <= *now) {
                    side.wakes += 1;
                    side.agent.handle_timeout(*now).expect("timeout");
                }
            }
        }
    }

    /// The node's agent with the node's timeouts, and a client's with the crate's defaults, connected.
    fn connected() -> (Instant, Side, Side) {
        connected_to(AgentConfig::default())
    }

    /// The node's agent with the node's timeouts, and a client's with `client`, connected.
    fn connected_to(client: AgentConfig) -> (Instant, Side, Side) {
        let config = MediaConfig::default();
        let mut now = Instant::now();
        let node_config = AgentConfig {
            disconnected_timeout: Some(config.ice_disconnected_timeout),
            failed_timeout: Some(config.ice_failed_timeout),
            keepalive_interval: Some(config.ice_consent_interval),
            check_interval: super::ICE_CHECK_INTERVAL,
            ..Default::default()
        };
        let mut node = Side::new(now, node_config, 40_000);
        let mut client = Side::new(now, client, 40_001);
        node.agent.add_remote_candidate(client.candidate()).expect("remote candidate");
        client.agent.add_remote_candidate(node.candidate()).expect("remote candidate");
        let Credentials { ufrag, pwd } = client.agent.get_local_credentials().clone();
        node.agent.start_connectivity_checks(now, false, ufrag, pwd).expect("started");
        let Credentials { ufrag, pwd } = node.agent.get_local_credentials().clone();
        client.agent.start_connectivity_checks(now, true, ufrag, pwd).expect("started");
        let until = now + Duration::from_secs(3);
        run(&mut now, until, &mut node, &mut client);
        assert_eq!((node.state, client.state), (ConnectionState::Connected, ConnectionState::Connected));
        (now, node, client)
    }

    /// The patch of `vendor/rtc-ice`: connected, the node's agent wakes its connection once a second
    /// (the crate ticked every 200 ms), its consent checks leave every 5 s (`ice_consent_interval`)
    /// and the connection stays up.
    #[test]
    fn a_connected_agent_of_the_node_ticks_once_a_second() {
        let (mut now, mut node, mut client) = connected();
        node.recount();
        client.recount();
        let until = now + Duration::from_secs(20);
        run(&mut now, until, &mut node, &mut client);
        assert!((18..=21).contains(&node.wakes), "{} wake-ups in 20 s", node.wakes);
        // Its consent checks, one every 5 s, and its answers to the client's (every 2 s).
        assert!((3..=5).contains(&node.requests), "{} checks of the node in 20 s", node.requests);
        assert_eq!(node.sent - node.requests, client.requests, "the node's answers");
        assert!(client.requests >= 9, "{} checks of the client in 20 s", client.requests);
        assert_eq!((node.state, client.state), (ConnectionState::Connected, ConnectionState::Connected));
    }

    /// The patch of `vendor/rtc-ice` (§2, RFC 8445 §7.3.1.4): connected, the node answers a
    /// client's consent checks without sending one of its own on the pair each time (the crate did,
    /// so each check of the client cost the node a second round trip); its own checks still leave
    /// every 5 s. The client checks every 500 ms, as the participant client does.
    #[test]
    fn the_node_answers_a_clients_consent_checks_without_checks_of_its_own() {
        let keepalive = Duration::from_millis(500);
        let (mut now, mut node, mut client) = connected_to(AgentConfig {
            keepalive_interval: Some(keepalive),
            disconnected_timeout: Some(Duration::from_millis(1500)),
            ..Default::default()
        });
        node.recount();
        client.recount();
        let until = now + Duration::from_secs(20);
        run(&mut now, until, &mut node, &mut client);
        // The client's checks (every 500 to 600 ms), each answered by the node.
        assert!((30..=41).contains(&client.requests), "the client's checks: {}", client.requests);
        assert_eq!(node.sent - node.requests, client.requests, "the node's answers");
        // The node's own consent checks, every 5 s (with the crate as published: one more per
        // check of the client, 40 or so).
        assert!((3..=5).contains(&node.requests), "{} checks of the node in 20 s", node.requests);
        assert_eq!(client.sent - client.requests, node.requests, "the client's answers");
        assert_eq!((node.state, client.state), (ConnectionState::Connected, ConnectionState::Connected));
    }

    /// Ticking less, the node still notices a silent client within a fifth of the disconnected
    /// timeout (5 s): disconnected after 5 to 6 s.
    #[test]
    fn a_silent_client_is_disconnected_within_a_fifth_of_the_timeout() {
        let (mut now, mut node, mut client) = connected();
        client.heard = false;
        let mut disconnected_at = None;
        while now < node.received + Duration::from_secs(10) && disconnected_at.is_none() {
            let until = now + Duration::from_millis(50);
            run(&mut now, until, &mut node, &mut client);
            if node.state == ConnectionState::Disconnected {
                disconnected_at = Some(now);
            }
        }
        let after = disconnected_at.expect("disconnected") - node.received;
        assert!(
            after > Duration::from_secs(5) && after <= Duration::from_secs(6) + Duration::from_millis(50),
            "{after:?}"
        );
    }
}
