//! Bounded fuzzing of `Model::parse` and `infer`: truncations, byte flips (with the CRC fixed up so
//! the structural checks are reached) and random bytes never panic; errors name an offset.

mod common;

use bnas_device::{format, Error, Input, Model};
use common::{aligned, random_net, NetSpec, Rng};
use proptest::prelude::*;

fn small_net(seed: u64) -> Vec<u8> {
    random_net(NetSpec { in_c: 2, hw: 5, c: 3, cells: 2, nodes: 2, classes: 3, seed })
}

/// Parses `bytes` (4-byte aligned copy); if that succeeds, runs inference with u8 input and with
/// f32 input holding NaN, infinities, the largest float, a subnormal and -0.
fn parse_and_run(bytes: &[u8]) -> Result<(), Error> {
    let words = aligned(bytes);
    let m = Model::parse(&bytemuck::cast_slice(&words)[..bytes.len()])?;
    let (c, h, w) = m.input_shape();
    // A malformed model that still parses could claim a huge arena: cap what the test allocates.
    if m.arena_words() > 1 << 22 || c * h * w > 1 << 20 {
        return Ok(());
    }
    let mut arena = vec![0u32; m.arena_words()];
    let mut logits = vec![0.0; m.classes()];
    m.infer(Input::U8(&vec![7u8; c * h * w]), &mut arena, &mut logits)?;
    let floats = [0.5, f32::NAN, f32::NEG_INFINITY, -0.0, f32::MAX, f32::INFINITY, -f32::NAN, 1e-40];
    let x: Vec<f32> = floats.iter().copied().cycle().take(c * h * w).collect();
    m.infer(Input::F32(&x), &mut arena, &mut logits)?;
    for node in m.nodes() {
        let _ = (node.output(), node.inputs());
    }
    Ok(())
}

fn fix_crc(bytes: &mut [u8]) {
    if bytes.len() >= format::HEADER_BYTES {
        let crc = format::crc32(&bytes[format::HEADER_BYTES..]);
        bytes[12..16].copy_from_slice(&crc.to_le_bytes());
        let len = (bytes.len() - format::HEADER_BYTES) as u32;
        bytes[8..12].copy_from_slice(&len.to_le_bytes());
    }
}

#[test]
fn every_truncation_is_an_error_naming_the_offset() {
    let bytes = small_net(3);
    parse_and_run(&bytes).expect("the intact model runs");
    for cut in 0..bytes.len() {
        match Model::parse(&bytes[..cut]) {
            Err(Error::Truncated { offset, .. }) => assert!(offset <= cut, "cut {cut}, offset {offset}"),
            other => panic!("truncated at {cut}: expected Truncated, got {other:?}"),
        }
    }
}

#[test]
fn a_flipped_byte_fails_the_crc() {
    let bytes = small_net(5);
    let mut r = Rng(11);
    for _ in 0..200 {
        let mut b = bytes.clone();
        let at = format::HEADER_BYTES + r.below(b.len() - format::HEADER_BYTES);
        b[at] ^= 1 << r.below(8);
        assert!(matches!(Model::parse(&b), Err(Error::BadCrc { .. })));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn corrupted_models_with_valid_crc_never_panic(seed in any::<u64>(), flips in 1usize..8, cut in any::<bool>()) {
        let mut bytes = small_net(seed % 4 + 1);
        let mut r = Rng(seed | 1);
        for _ in 0..flips {
            let at = format::HEADER_BYTES + r.below(bytes.len() - format::HEADER_BYTES);
            // Small values hit the interesting cases (ids, sizes, kinds); big ones the overflows.
            bytes[at] = match r.below(4) { 0 => 0, 1 => 0xFF, 2 => r.below(8) as u8, _ => r.below(256) as u8 };
        }
        if cut {
            let keep = format::HEADER_BYTES + (r.below(bytes.len() - format::HEADER_BYTES) & !3);
            bytes.truncate(keep);
        }
        fix_crc(&mut bytes);
        if let Err(e) = parse_and_run(&bytes) {
            prop_assert!(!e.to_string().is_empty());
        }
    }

    #[test]
    fn random_bytes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..512)) {
        let mut bytes = Vec::new();
        bytes.extend(format::MAGIC.to_le_bytes());
        bytes.extend(format::VERSION.to_le_bytes());
        bytes.extend([0u8; 8]);
        bytes.extend(&body[..body.len() & !3]);
        fix_crc(&mut bytes);
        let _ = parse_and_run(&bytes);
        let _ = Model::parse(&body);
    }
}
