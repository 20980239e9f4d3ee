//! The Internet checksum (RFC 1071), its incremental update (RFC 1624) and the TCP/UDP/ICMPv6
//! pseudo-header sums for IPv4 and IPv6.

/// Adds `data` as big-endian 16-bit words to a 32-bit accumulator (an odd last byte is padded).
/// The result is the one's-complement sum folded to 16 bits (so callers may add small terms
/// such as a pseudo-header's protocol and length without overflow).
#[inline]
pub fn sum(acc: u32, data: &[u8]) -> u32 {
    u32::from(fold64(u64::from(acc) + u64::from(sum16(data))))
}

/// The one's-complement sum of `data` as big-endian 16-bit words, folded. Summed four bytes at
/// a time in native byte order into 64 bits (no carry chain, so the loop vectorises), then
/// folded and byte-swapped: the sum does not depend on byte order, and 2^16 = 1 modulo 0xffff
/// (RFC 1071 §2). The tail is zero-padded, which is the padding of an odd last byte.
#[inline]
fn sum16(data: &[u8]) -> u16 {
    let word = |c: &[u8]| u64::from(u32::from_ne_bytes([c[0], c[1], c[2], c[3]]));
    let mut wide = 0u64;
    let mut blocks = data.chunks_exact(16);
    for c in &mut blocks {
        wide += word(&c[0..4]) + word(&c[4..8]) + word(&c[8..12]) + word(&c[12..16]);
    }
    let mut chunks = blocks.remainder().chunks_exact(4);
    for c in &mut chunks {
        wide += word(c);
    }
    let r = chunks.remainder();
    let at = |i: usize| r.get(i).copied().unwrap_or(0);
    wide += u64::from(u32::from_ne_bytes([at(0), at(1), at(2), 0]));
    let native = fold64(wide);
    if cfg!(target_endian = "little") { native.swap_bytes() } else { native }
}

/// The one's-complement sum of a fixed-size block (`N` a multiple of 4, such as an IPv4 header
/// without options), folded: `fold(sum(0, data))`, unrolled. A header whose sum is 0xffff has
/// a good checksum.
#[inline]
pub fn sum_words<const N: usize>(data: &[u8; N]) -> u16 {
    let mut wide = 0u64;
    for c in data.chunks_exact(4) {
        wide += u64::from(u32::from_ne_bytes([c[0], c[1], c[2], c[3]]));
    }
    let native = fold64(wide);
    if cfg!(target_endian = "little") { native.swap_bytes() } else { native }
}

/// `SHORT_MASKS[k]`: four little-endian words that clear the first `k` bytes of 32.
const SHORT_MASKS: [[u64; 4]; 33] = {
    let mut masks = [[0u64; 4]; 33];
    let mut k: usize = 0;
    while k <= 32 {
        let mut i: usize = 0;
        while i < 4 {
            let before = k.saturating_sub(8 * i);
            masks[k][i] = if before >= 8 { 0 } else { u64::MAX << (8 * before) };
            i += 1;
        }
        k += 1;
    }
    masks
};

/// `fold(sum(0, &data[start..end]))` without a loop, for a segment of even length up to 32
/// bytes that has at least 32 bytes of `data` up to its end (a TCP header with or without
/// timestamps, in a frame that starts with its Ethernet and IP headers): it sums the 32 bytes
/// ending where the segment ends as four fixed 8-byte words, with the bytes before the segment
/// masked off. The even length keeps the 16-bit words where `sum` puts them. `None` for any
/// other segment. A loop over so few bytes costs more in vector setup than in summing.
#[inline]
pub fn sum_short(data: &[u8], start: usize, end: usize) -> Option<u16> {
    let len = end.checked_sub(start)?;
    if len > 32 || len % 2 != 0 || end < 32 {
        return None;
    }
    let window: &[u8; 32] = super::array_at(data, end - 32)?;
    // The first 32 - len bytes of the window are not the segment's.
    let mask = &SHORT_MASKS[32 - len];
    // 64-bit words summed with end-around carry (RFC 1071 §2): an add and an add-with-carry
    // each.
    let mut wide = 0u64;
    for (c, m) in window.chunks_exact(8).zip(mask) {
        let kept = u64::from_le_bytes(super::get_array(c, 0)) & m;
        let (sum, carry) = wide.overflowing_add(kept);
        wide = sum + u64::from(carry);
    }
    // Little-endian words sum to the byte-swapped sum (RFC 1071 §2).
    Some(fold64(wide).swap_bytes())
}

/// Folds a 32-bit accumulator to 16 bits with end-around carry. Two folds always suffice (the
/// first leaves at most 0x1fffe), so there is no loop and no branch.
#[inline]
pub fn fold(acc: u32) -> u16 {
    // The halves' sum with its carry added back (an add and an add-with-carry); that cannot
    // carry again, since a carry leaves at most 0xfffe.
    #[allow(clippy::cast_possible_truncation)]
    let (sum, carry) = (acc as u16).overflowing_add((acc >> 16) as u16);
    sum + u16::from(carry)
}

/// The checksum field value for `data` (the one's complement of its one's-complement sum).
pub fn checksum(data: &[u8]) -> u16 {
    !fold(sum(0, data))
}

/// Combines a partial sum and data into the final checksum value.
pub fn finish(acc: u32, data: &[u8]) -> u16 {
    !fold(sum(acc, data))
}

/// Pseudo-header sum for IPv4 (RFC 793): source, destination, protocol and upper-layer length.
#[inline]
pub fn pseudo_v4(src: [u8; 4], dst: [u8; 4], proto: u8, len: u16) -> u32 {
    let (s, d) = (u32::from_be_bytes(src), u32::from_be_bytes(dst));
    (s >> 16) + (s & 0xffff) + (d >> 16) + (d & 0xffff) + u32::from(proto) + u32::from(len)
}

/// `pseudo_v6` of the addresses as they lie in an IPv6 header (its bytes 8..40, source then
/// destination), summed in place: copying them out to pass them by value cost more than the
/// sum (bench/RESULTS.md §1).
#[inline]
pub fn pseudo_v6_in_place(addrs: &[u8; 32], proto: u8, len: u32) -> u32 {
    u32::from(sum_words(addrs)).wrapping_add(len >> 16).wrapping_add(len & 0xffff).wrapping_add(u32::from(proto))
}

/// Pseudo-header sum for IPv6 (RFC 8200 §8.1).
pub fn pseudo_v6(src: [u8; 16], dst: [u8; 16], proto: u8, len: u32) -> u32 {
    let acc = sum(0, &src);
    let acc = sum(acc, &dst);
    acc.wrapping_add(len >> 16).wrapping_add(len & 0xffff).wrapping_add(u32::from(proto))
}

/// RFC 1624 eqn. 3: the new checksum after a 16-bit word changed from `old` to `new`.
#[inline]
pub fn update16(check: u16, old: u16, new: u16) -> u16 {
    let acc = u32::from(!check) + u32::from(!old) + u32::from(new);
    !fold(acc)
}

/// RFC 1624 for a run of bytes (even length, 16-bit aligned within the checksummed data).
#[inline]
pub fn update_bytes(check: u16, old: &[u8], new: &[u8]) -> u16 {
    debug_assert_eq!(old.len(), new.len());
    let mut acc = u32::from(!check);
    for (o, n) in old.chunks_exact(2).zip(new.chunks_exact(2)) {
        acc += u32::from(!u16::from_be_bytes([o[0], o[1]]));
        acc += u32::from(u16::from_be_bytes([n[0], n[1]]));
    }
    !fold(acc)
}

/// Folds a 64-bit one's-complement accumulator to 16 bits.
#[inline]
pub fn fold64(acc: u64) -> u16 {
    // As `fold`, from 64 bits to 32 first.
    #[allow(clippy::cast_possible_truncation)]
    let (sum, carry) = (acc as u32).overflowing_add((acc >> 32) as u32);
    fold(sum + u32::from(carry))
}

/// The RFC 1624 difference Σ(¬old + new) of bytes that changed from `old` to `new`, summed as
/// 32-bit words (once folded, the same as summing 16-bit words). `N` is a multiple of 4 and the
/// bytes start 16-bit aligned in the checksummed data.
#[inline]
pub fn delta<const N: usize>(old: &[u8; N], new: &[u8; N]) -> u64 {
    let mut acc = 0u64;
    for (o, n) in old.chunks_exact(4).zip(new.chunks_exact(4)) {
        acc += u64::from(!u32::from_be_bytes([o[0], o[1], o[2], o[3]]));
        acc += u64::from(u32::from_be_bytes([n[0], n[1], n[2], n[3]]));
    }
    acc
}

/// Applies a difference built by `delta` (plus any `update16`-style word terms) to a checksum.
#[inline]
pub fn apply_delta(check: u16, delta: u64) -> u16 {
    !fold64(u64::from(!check) + delta)
}

/// UDP transmits a computed checksum of zero as all ones (RFC 768).
#[inline]
pub fn udp_nonzero(check: u16) -> u16 {
    if check == 0 { 0xffff } else { check }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sum_words_is_the_general_sum() {
        let mut x = 0x9e37_79b9u32;
        for _ in 0..1000 {
            let mut block = [0u8; 20];
            for b in &mut block {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                *b = x.to_le_bytes()[0];
            }
            assert_eq!(sum_words(&block), fold(sum(0, &block)), "{block:?}");
        }
        assert_eq!(sum_words(&[0xff; 8]), 0xffff);
        assert_eq!(sum_words(&[0; 8]), 0);
    }

    #[test]
    fn the_in_place_pseudo_header_is_the_pseudo_header() {
        let mut x = 0x9e37_79b9u32;
        for len in [0, 1, 20, 0xffff, 0x1_0001, u32::MAX] {
            let mut addrs = [0u8; 32];
            for b in &mut addrs {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                *b = x.to_le_bytes()[0];
            }
            for proto in [6, 17, 58] {
                let (src, dst) = (crate::wire::get_array(&addrs, 0), crate::wire::get_array(&addrs, 16));
                let whole = pseudo_v6(src, dst, proto, len);
                assert_eq!(fold(pseudo_v6_in_place(&addrs, proto, len)), fold(whole), "{addrs:?} {proto} {len}");
            }
        }
        assert_eq!(fold(pseudo_v6_in_place(&[0xff; 32], 0, 0)), 0xffff);
    }

    #[test]
    fn sum_short_is_the_general_sum() {
        let mut x = 0x9e37_79b9u32;
        let mut frame = [0u8; 80];
        for round in 0..200 {
            for b in &mut frame {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                *b = x.to_le_bytes()[0];
            }
            if round == 0 {
                frame = [0xff; 80];
            }
            for end in 0..=frame.len() {
                for start in 0..=end {
                    let general = fold(sum(0, &frame[start..end]));
                    match sum_short(&frame, start, end) {
                        Some(short) => assert_eq!(short, general, "{start}..{end} of {frame:?}"),
                        None => assert!(end - start > 32 || (end - start) % 2 == 1 || end < 32),
                    }
                }
            }
        }
        assert_eq!(sum_short(&frame, 40, 39), None);
        assert_eq!(sum_short(&frame, 70, 90), None, "past the end of the data");
    }

    #[test]
    fn rfc1071_example() {
        // RFC 1071 §3: the words 0001 f203 f4f5 f6f7 sum to 0xddf2.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(sum(0, &data)), 0xddf2);
        assert_eq!(checksum(&data), !0xddf2);
    }

    #[test]
    fn folds_equal_folding_until_it_fits() {
        let looped = |mut a: u64| {
            while a > 0xffff {
                a = (a & 0xffff) + (a >> 16);
            }
            a
        };
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let random = std::iter::repeat_with(move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        });
        let edges = [0, 1, 0xffff, 0x1_0000, 0x1fffe, 0x1ffff, 0xffff_0000, 0xfffe_ffff, 0xffff_ffff];
        for a in edges.into_iter().chain(random.map(|r| r >> 32).take(100_000)) {
            let a = u32::try_from(a).unwrap_or(u32::MAX);
            assert_eq!(u64::from(fold(a)), looped(u64::from(a)), "{a:#x}");
        }
        let edges64 = [0x1_0000_0000, 0x1_ffff_fffe, 0xffff_ffff_ffff_ffff, 0xffff_ffff_0000_0001];
        for a in edges.into_iter().chain(edges64).chain(random.take(100_000)) {
            assert_eq!(u64::from(fold64(a)), looped(a), "{a:#x}");
        }
    }

    #[test]
    fn odd_length_pads_with_zero() {
        assert_eq!(checksum(&[0x12, 0x34, 0x56]), checksum(&[0x12, 0x34, 0x56, 0x00]));
    }

    #[test]
    fn incremental_matches_full_recompute() {
        let mut data = [0x45u8, 0, 0, 60, 0x1c, 0x46, 0x40, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2];
        let c = checksum(&data);
        data[10..12].copy_from_slice(&c.to_be_bytes());
        assert_eq!(checksum(&data), 0);
        let old = [data[16], data[17], data[18], data[19]];
        let new = [192, 168, 7, 9];
        data[16..20].copy_from_slice(&new);
        let updated = update_bytes(c, &old, &new);
        data[10..12].copy_from_slice(&[0, 0]);
        assert_eq!(updated, checksum(&data));
        let ttl_old = u16::from_be_bytes([data[8], data[9]]);
        data[8] -= 1;
        let ttl_new = u16::from_be_bytes([data[8], data[9]]);
        let u2 = update16(updated, ttl_old, ttl_new);
        data[10..12].copy_from_slice(&[0, 0]);
        assert_eq!(u2, checksum(&data));
    }

    #[test]
    fn wide_sum_agrees_with_the_word_by_word_sum() {
        // Every length and alignment of the 8-byte steps, all-ones data (carries everywhere),
        // and the pseudo-header of the largest addresses (no overflow adding to the sum).
        let narrow = |data: &[u8]| {
            let mut acc = 0u64;
            for c in data.chunks(2) {
                acc += u64::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
            }
            fold64(acc)
        };
        for fill in [0xffu8, 0x5a, 0x01] {
            for len in 0..80u8 {
                let data: Vec<u8> = (0..len).map(|i| fill.wrapping_mul(i | 1)).collect();
                assert_eq!(fold(sum(0, &data)), narrow(&data), "fill {fill:#x} len {len}");
            }
        }
        let p = pseudo_v4([255; 4], [255; 4], 17, u16::MAX);
        assert_eq!(fold(p), narrow(&[255, 255, 255, 255, 255, 255, 255, 255, 0, 17, 255, 255]));
    }
}
