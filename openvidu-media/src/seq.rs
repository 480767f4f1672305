//! RTP sequence numbers in their wrapping order (RFC 3550 §A.1): one number comes after another
//! when it is less than half the 16-bit space ahead of it.

/// Whether sequence number `a` comes after `b` (strictly), across the wrap.
pub(crate) fn is_after(a: u16, b: u16) -> bool {
    let ahead = a.wrapping_sub(b);
    ahead != 0 && ahead < 0x8000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn after_means_less_than_half_the_space_ahead_across_the_wrap() {
        assert!(is_after(2, 1));
        assert!(is_after(0, 65_535), "across the wrap");
        assert!(is_after(0x7FFF, 0));
        assert!(!is_after(0x8000, 0), "half the space ahead is behind");
        assert!(!is_after(1, 1));
        assert!(!is_after(1, 2));
        assert!(!is_after(65_535, 0));
    }
}
