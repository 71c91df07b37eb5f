//! The popcount kernels (arena plan included) against the float reference interpreter, over random
//! T_B-style cells, shapes, strides, dilations and inputs.

mod common;

use bnas_device::{reference, Input, Model};
use common::{aligned, random_net, NetSpec, Rng};
use proptest::prelude::*;

/// Logits may differ by this much relative to the largest logit magnitude (plus 1e-6 absolute).
/// Binary convs agree bit for bit (exact integers in f32, one multiply by the scale); float convs,
/// pools, GAP and linear use the same summation order in both, so we measure 0 in practice, and
/// the bound leaves room for a compiler contracting `a * b + c` into an FMA.
const LOGIT_TOL: f32 = 1e-5;

fn argmax(v: &[f32]) -> usize {
    v.iter().enumerate().fold(0, |best, (i, x)| if *x > v[best] { i } else { best })
}

/// The kernels' logits (arena filled with garbage first) and the reference interpreter's, for one
/// input.
fn kernels_and_reference(model: &Model<'_>, input: Input<'_>) -> (Vec<f32>, Vec<f32>) {
    let mut arena = vec![0xDEAD_BEEFu32; model.arena_words()];
    let mut logits = vec![0.0; model.classes()];
    model.infer(input, &mut arena, &mut logits).expect("infer");
    (logits, reference::run(model, input).expect("reference"))
}

fn check(spec: NetSpec, as_u8: bool) -> f32 {
    let bytes = random_net(spec);
    let words = aligned(&bytes);
    let model = Model::parse(&bytemuck::cast_slice(&words)[..bytes.len()]).expect("parse");
    let mut r = Rng(spec.seed ^ 0x9E37_79B9_7F4A_7C15);
    let n = spec.in_c * spec.hw * spec.hw;
    let pixels: Vec<u8> = (0..n).map(|_| r.below(256) as u8).collect();
    let floats: Vec<f32> = r.vec(n, 2.0);
    let input = if as_u8 { Input::U8(&pixels) } else { Input::F32(&floats) };
    let (logits, want) = kernels_and_reference(&model, input);
    let scale = want.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let diff = logits.iter().zip(&want).fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
    assert_eq!(argmax(&logits), argmax(&want), "argmax differs: {logits:?} vs {want:?}");
    assert!(diff <= LOGIT_TOL * scale + 1e-6, "max |diff| {diff} > tol (scale {scale})");
    diff / scale.max(1e-30)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn kernels_match_reference_on_random_cells(
        in_c in 1usize..4, hw in 3usize..11, c in 1usize..40, cells in 1usize..4, nodes in 1usize..4,
        classes in 2usize..11, seed in any::<u64>(), as_u8 in any::<bool>(),
    ) {
        let rel = check(NetSpec { in_c, hw, c, cells, nodes, classes, seed }, as_u8);
        prop_assert!(rel <= LOGIT_TOL);
    }
}

#[test]
fn kernels_match_reference_bit_for_bit_on_a_fixed_net() {
    let mut worst = 0.0f32;
    for seed in 1..9u64 {
        let spec = NetSpec { in_c: 3, hw: 8, c: 33, cells: 3, nodes: 4, classes: 10, seed };
        worst = worst.max(check(spec, seed % 2 == 0));
    }
    println!("largest relative logit difference, kernels vs reference: {worst:e}");
    assert_eq!(worst, 0.0, "expected bit-identical logits");
}

#[test]
fn arena_plan_reaches_the_liveness_lower_bound() {
    let mut worst = 0.0f64;
    for seed in 1..33u64 {
        let spec = NetSpec {
            in_c: 3,
            hw: 8 + (seed as usize % 5),
            c: 16,
            cells: 1 + seed as usize % 4,
            nodes: 4,
            classes: 10,
            seed,
        };
        let bytes = random_net(spec);
        let words = aligned(&bytes);
        let m = Model::parse(&bytemuck::cast_slice(&words)[..bytes.len()]).unwrap();
        let ratio = m.arena_bytes() as f64 / m.liveness_lower_bound_bytes() as f64;
        worst = worst.max(ratio);
    }
    println!("largest arena / liveness lower bound over 32 random nets: {worst:.4}");
    assert!(worst <= 1.0 + 1e-9, "arena exceeds the lower bound by {worst}");
}

/// Inputs with NaN (both signs), infinities, the largest floats, subnormals and signed zeros: the
/// kernels still return the reference's logits, bit for bit (NaN where it has NaN), on 24 random
/// nets. (This build's binary convs run the dense-row kernel; both binarizers share one
/// predicate, checked on these values in `threshold_predicate_is_the_definition`.)
#[test]
fn kernels_match_reference_on_non_finite_inputs() {
    let specials = [
        f32::NAN,
        -f32::NAN,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::MAX,
        f32::MIN,
        f32::MIN_POSITIVE / 4.0,
        -f32::MIN_POSITIVE / 4.0,
        0.0,
        -0.0,
    ];
    let (mut checked, mut finite) = (0, 0);
    for seed in 1..25u64 {
        let spec = NetSpec {
            in_c: 2,
            hw: 6 + seed as usize % 7,
            c: 5 + seed as usize * 3 % 37,
            cells: 2,
            nodes: 3,
            classes: 4,
            seed,
        };
        let bytes = random_net(spec);
        let words = aligned(&bytes);
        let model = Model::parse(&bytemuck::cast_slice(&words)[..bytes.len()]).expect("parse");
        let mut r = Rng(seed * 77);
        let n = spec.in_c * spec.hw * spec.hw;
        for density in [1usize, 8, 64] {
            let mut x = r.vec(n, 2.0);
            for v in x.iter_mut() {
                if r.below(64) < density {
                    *v = specials[r.below(specials.len())];
                }
            }
            let (logits, want) = kernels_and_reference(&model, Input::F32(&x));
            let same = logits.iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()));
            assert!(same, "seed {seed}, density {density}/64: {logits:?} vs reference {want:?}");
            checked += 1;
            finite += want.iter().all(|v| v.is_finite()) as usize;
        }
    }
    println!("{checked} inferences with non-finite inputs ({finite} with every logit finite): logits equal to the reference's");
}
