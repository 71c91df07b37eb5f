//! The serial protocol between the host and the firmware, defined once for both ends.
//!
//! A frame is `COBS(tag, body, crc32(tag ++ body) as LE u32)` followed by a 0x00 delimiter.
//! Multi-byte fields in bodies are little-endian u32 / f32.

use crate::format::crc32;

/// Host -> firmware: one image, body = `c*h*w` u8 pixels, CHW.
pub const TAG_IMAGE: u8 = 0x01;
/// Host -> firmware: ask for the peak stack measured so far (empty body).
pub const TAG_STATS: u8 = 0x02;
/// Host -> firmware: one image, answered with per-node timer ticks (`TAG_PROFILE_RESULT`).
pub const TAG_PROFILE: u8 = 0x03;
/// Firmware -> host at boot: `[version, input_len, classes, arena_bytes, model_bytes, empty_call_ticks]`.
pub const TAG_READY: u8 = 0x81;
/// Firmware -> host: `[status (0 = ok, else error code), class, ticks, instructions, logits as f32...]`.
pub const TAG_RESULT: u8 = 0x82;
/// Firmware -> host: `[peak_stack_bytes, stack_size_bytes]`.
pub const TAG_STATS_RESULT: u8 = 0x83;
/// Firmware -> host: a frame it could not use: `[code]` (1 bad frame, 2 bad tag, 3 bad length).
pub const TAG_ERROR: u8 = 0x84;
/// Firmware -> host: `[n_nodes, ticks of node 0, ticks of node 1, ...]`.
pub const TAG_PROFILE_RESULT: u8 = 0x85;

/// Protocol version sent in `TAG_READY`.
pub const LINK_VERSION: u32 = 1;

/// Bytes COBS may add to `n` bytes (one per 254, plus the first code byte).
pub const fn cobs_overhead(n: usize) -> usize {
    n / 254 + 1
}

/// Largest encoded frame (delimiter included) for a body of `body_len` bytes.
pub const fn max_frame_len(body_len: usize) -> usize {
    let raw = 1 + body_len + 4;
    raw + cobs_overhead(raw) + 1
}

/// COBS-encodes `src` into `dst`; returns the encoded length (no delimiter), or `None` if `dst` is too small.
pub fn cobs_encode(src: &[u8], dst: &mut [u8]) -> Option<usize> {
    let mut code_at = 0usize;
    let mut out = 1usize;
    let mut code = 1u8;
    for &b in src {
        if b == 0 {
            *dst.get_mut(code_at)? = code;
            code_at = out;
            out += 1;
            code = 1;
        } else {
            *dst.get_mut(out)? = b;
            out += 1;
            code += 1;
            if code == 0xFF {
                *dst.get_mut(code_at)? = code;
                code_at = out;
                out += 1;
                code = 1;
            }
        }
    }
    *dst.get_mut(code_at)? = code;
    Some(out)
}

/// Decodes a COBS block (no delimiter) in place; returns the decoded length, `None` if malformed.
pub fn cobs_decode(buf: &mut [u8]) -> Option<usize> {
    let (mut read, mut write) = (0usize, 0usize);
    let len = buf.len();
    while read < len {
        let code = *buf.get(read)?;
        if code == 0 {
            return None;
        }
        read += 1;
        for _ in 1..code {
            let b = *buf.get(read)?;
            *buf.get_mut(write)? = b;
            read += 1;
            write += 1;
        }
        if code != 0xFF && read < len {
            *buf.get_mut(write)? = 0;
            write += 1;
        }
    }
    Some(write)
}

/// Builds a frame `COBS(tag, parts..., crc) 0x00` in `out` using `scratch` (>= 5 + body bytes);
/// returns the frame length.
pub fn encode_frame(tag: u8, parts: &[&[u8]], scratch: &mut [u8], out: &mut [u8]) -> Option<usize> {
    let mut n = 0usize;
    for chunk in core::iter::once(&[tag][..]).chain(parts.iter().copied()) {
        scratch.get_mut(n..n + chunk.len())?.copy_from_slice(chunk);
        n += chunk.len();
    }
    let crc = crc32(scratch.get(..n)?);
    scratch.get_mut(n..n + 4)?.copy_from_slice(&crc.to_le_bytes());
    n += 4;
    let m = cobs_encode(scratch.get(..n)?, out)?;
    *out.get_mut(m)? = 0;
    Some(m + 1)
}

/// Decodes one frame (the bytes before its 0x00 delimiter) in place: `(tag, body)` if its CRC holds.
pub fn decode_frame(frame: &mut [u8]) -> Option<(u8, &[u8])> {
    let n = cobs_decode(frame)?;
    let raw = frame.get(..n)?;
    let (payload, crc) = raw.split_at_checked(n.checked_sub(4)?)?;
    let stored = u32::from_le_bytes(crc.try_into().ok()?);
    if crc32(payload) != stored {
        return None;
    }
    let (&tag, body) = payload.split_first()?;
    Some((tag, body))
}

/// Reads little-endian u32 `i` of a body.
pub fn body_u32(body: &[u8], i: usize) -> Option<u32> {
    Some(u32::from_le_bytes(body.get(4 * i..4 * i + 4)?.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_with_zeros_and_long_runs() {
        for len in [0usize, 1, 253, 254, 255, 600] {
            let body: std::vec::Vec<u8> = (0..len).map(|i| if i % 7 == 0 { 0 } else { (i % 251) as u8 + 1 }).collect();
            let body2 = std::vec![0x55u8; len];
            for b in [&body, &body2] {
                let mut scratch = std::vec![0u8; len + 5];
                let mut out = std::vec![0u8; max_frame_len(len)];
                let n = encode_frame(TAG_IMAGE, &[b], &mut scratch, &mut out).unwrap();
                assert_eq!(out[n - 1], 0);
                assert!(!out[..n - 1].contains(&0));
                let (tag, got) = decode_frame(&mut out[..n - 1]).unwrap();
                assert_eq!((tag, got), (TAG_IMAGE, &b[..]));
            }
        }
    }
}
