use openvidu_core::model::VideoCodec;
use openvidu_media::{EndpointId, IceCandidate, MediaError, MediaNode, PublishOptions};

use crate::support::*;

const GARBAGE: [&str; 5] = [
    "",
    "hello",
    "v=0\r\nm=video\r\n",
    "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=rtpmap:96 VP8/90000\r\n",
    "\u{0}\u{ffff}=\r\n=\r\n",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_sdp_is_an_sdp_error_everywhere() {
    let h = Harness::new().await;
    let stream = stream("str_CAM_Garb_con_Pub");
    for garbage in GARBAGE {
        let err = h.node.publish(&h.session, &stream, PublishOptions::new(garbage)).await.unwrap_err();
        assert!(matches!(err, MediaError::Sdp(_)), "{garbage:?}: {err:?}");
        assert_eq!(err.rpc_code(), 302);
    }
    // A failed publish leaves nothing behind: a good one works afterwards.
    let publisher = TestPublisher::publish(&h, &stream).await;
    publisher.start_media();
    for garbage in GARBAGE {
        let err = h.node.subscribe(&h.session, &connection("con_Sub"), &stream, garbage.into()).await.unwrap_err();
        assert!(matches!(err, MediaError::Sdp(_)), "{garbage:?}: {err:?}");
    }
    let sub = connection("con_Srv");
    let _offer = h.node.prepare_subscribe(&h.session, &sub, &stream).await.unwrap();
    for garbage in GARBAGE {
        let err = h.node.complete_subscribe(&h.session, &sub, &stream, garbage.into()).await.unwrap_err();
        assert!(matches!(err, MediaError::Sdp(_)), "{garbage:?}: {err:?}");
    }
    // An offer where an answer is expected.
    let (_other, offer) = TestPublisher::prepare(&h, &crate::support::stream("str_CAM_Othr_con_X")).await;
    let err = h.node.complete_subscribe(&h.session, &sub, &stream, offer).await.unwrap_err();
    assert_eq!(err.rpc_code(), 302, "{err}");
    // The node still serves real subscribers.
    let peer = subscribe_client_offer(&h, &connection("con_Ok"), &stream).await;
    assert_receives_both(&peer, 5).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forced_codec_missing_from_the_offer_is_refused_with_800() {
    let h = Harness::new().await;
    let stream = stream("str_CAM_Forc_con_Pub");
    // The test publisher only offers VP8.
    let (_publisher, offer) = TestPublisher::prepare(&h, &stream).await;
    let mut options = PublishOptions::new(offer.clone());
    options.forced_video_codec = VideoCodec::H264;
    let err = h.node.publish(&h.session, &stream, options).await.unwrap_err();
    assert!(matches!(err, MediaError::ForcedCodecNotFound(VideoCodec::H264)), "{err:?}");
    assert_eq!(err.rpc_code(), 800);

    let mut options = PublishOptions::new(offer);
    options.forced_video_codec = VideoCodec::Vp8;
    let answer = h.node.publish(&h.session, &stream, options).await.unwrap();
    assert!(answer.contains("VP8/90000"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_ids_map_to_openvidu_codes() {
    let h = Harness::new().await;
    let stream = stream("str_CAM_Ids0_con_Pub");
    let sub = connection("con_Sub");
    let other = session("ses_Unknown");

    let err = h.node.publish(&other, &stream, PublishOptions::new("x")).await.unwrap_err();
    assert!(matches!(err, MediaError::NoRouter(_)));
    let err = h.node.subscribe(&h.session, &sub, &stream, "x".into()).await.unwrap_err();
    assert_eq!(err.rpc_code(), 105, "{err}");
    let err = h.node.prepare_subscribe(&h.session, &sub, &stream).await.unwrap_err();
    assert_eq!(err.rpc_code(), 105, "{err}");
    let err = h.node.unpublish(&h.session, &stream).await.unwrap_err();
    assert_eq!(err.rpc_code(), 105, "{err}");
    let err = h.node.unsubscribe(&h.session, &sub, &stream).await.unwrap_err();
    assert_eq!(err.rpc_code(), 102, "{err}");
    let err = h.node.complete_subscribe(&h.session, &sub, &stream, "x".into()).await.unwrap_err();
    assert_eq!(err.rpc_code(), 102, "{err}");

    let _publisher = TestPublisher::publish(&h, &stream).await;
    let (_again, offer) = TestPublisher::prepare(&h, &stream).await;
    let err = h.node.publish(&h.session, &stream, PublishOptions::new(offer)).await.unwrap_err();
    assert!(matches!(err, MediaError::AlreadyPublishing(_)));
    assert_eq!(err.rpc_code(), 106);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_candidates_are_errors_and_end_of_candidates_is_fine() {
    let h = Harness::new().await;
    let endpoint = EndpointId::Publisher(stream("str_CAM_Cand_con_Pub"));
    for bad in ["candidate:nonsense", "candidate:1 1 udp x 127.0.0.1 9 typ host", "typ host"] {
        let err = h
            .node
            .add_ice_candidate(&h.session, endpoint.clone(), IceCandidate::new(bad, None, None))
            .await
            .unwrap_err();
        assert!(matches!(err, MediaError::IceCandidate(_)), "{bad}: {err:?}");
        assert_eq!(err.rpc_code(), 302);
    }
    for end in ["", "candidate:"] {
        h.node
            .add_ice_candidate(&h.session, endpoint.clone(), IceCandidate::new(end, Some("0".into()), Some(0)))
            .await
            .unwrap();
    }
    // On a live endpoint, browser candidates the node cannot use (mDNS names, TCP) are not errors.
    let _publisher = TestPublisher::publish(&h, endpoint.stream()).await;
    for odd in [
        "candidate:2 1 udp 2113937151 0b8e4a7c-3a0e-4a8f-9d5c-3a6f1f0c1e2d.local 54400 typ host generation 0",
        "candidate:3289912957 1 tcp 1518280447 127.0.0.1 9 typ host tcptype active generation 0",
    ] {
        h.node
            .add_ice_candidate(&h.session, endpoint.clone(), IceCandidate::new(odd, Some("0".into()), Some(0)))
            .await
            .unwrap_or_else(|e| panic!("{odd}: {e}"));
    }
}

/// Every offer obtained by deleting one line of a real offer, or by cutting it short, is either
/// accepted or refused with an error — never a panic inside the node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutilated_offers_never_panic() {
    let h = Harness::new().await;
    let (_publisher, offer) = TestPublisher::prepare(&h, &stream("str_CAM_Mutl_con_Pub")).await;
    let lines: Vec<&str> = offer.split("\r\n").collect();
    let mut variants: Vec<String> = (0..lines.len())
        .map(|skip| {
            lines.iter().enumerate().filter(|(i, _)| *i != skip).map(|(_, l)| *l).collect::<Vec<_>>().join("\r\n")
        })
        .collect();
    variants.extend((1..12).map(|k| offer[..offer.len() * k / 12].to_owned()));
    variants.push(offer.replace("a=rtpmap:96 VP8/90000", "a=rtpmap:96 VP8/abc"));
    variants.push(offer.replace("m=video 9", "m=video 99999999999"));
    variants.push(offer.replace("a=mid:1", "a=mid:0"));
    variants.push(offer.replace("a=setup:actpass", "a=setup:nonsense"));
    variants.push(offer.replace("a=fingerprint:sha-256", "a=fingerprint:md5"));
    let mut accepted = 0;
    for (i, variant) in variants.into_iter().enumerate() {
        let stream = stream(&format!("str_CAM_M{i:03}_con_Pub"));
        match h.node.publish(&h.session, &stream, PublishOptions::new(variant)).await {
            Ok(_) => {
                accepted += 1;
                h.node.unpublish(&h.session, &stream).await.unwrap();
            }
            Err(MediaError::Internal(e)) => panic!("variant {i} crashed the node: {e}"),
            Err(_) => {}
        }
    }
    assert!(accepted > 0, "harmless deletions are accepted");
    assert_eq!(h.node.load().await.publishers, 0);
}
