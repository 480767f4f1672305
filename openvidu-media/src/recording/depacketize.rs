//! RTP → whole frames: reordering, reassembly, keyframe detection and unwrapped timestamps.
