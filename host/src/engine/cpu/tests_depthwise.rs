//! The depthwise conv of `Cpu` against the naive twin (forward) and finite differences
//! (both gradients), on strides, dilations, paddings and thread splits.

use super::tests_fwd::{conv, cpu};
use crate::engine::backend::Backend;
use crate::engine::geom::ConvGeom;
use crate::engine::naive::{self, to32, to64};
use crate::engine::testutil::{max_rel_err, randn};
use crate::rng::Rng;

/// `c_in == c_out`: the shapes of binary separable convs (3x3 and 5x5, stride 1 and 2) and
/// odd corners (padding wider than the kernel reaches, 1x1 outputs, dilation).
pub(crate) fn dw_geoms() -> Vec<ConvGeom> {
    vec![
        conv(2, 3, 7, 5, 3, 3, 1, 1, 1),
        conv(3, 4, 8, 8, 4, 3, 2, 1, 1),
        conv(2, 2, 9, 7, 2, 5, 1, 2, 1),
        conv(1, 5, 9, 9, 5, 5, 2, 2, 1),
        conv(2, 3, 7, 7, 3, 3, 1, 2, 2),
        conv(2, 2, 3, 3, 2, 5, 1, 4, 1),
        conv(9, 6, 5, 5, 6, 3, 1, 1, 1),
    ]
}

#[test]
fn dwconv2d_matches_naive() {
    let mut rng = Rng::new(23);
    for g in dw_geoms() {
        let (x, w) = (randn(&mut rng, g.in_len(), 1.0), randn(&mut rng, g.c_in * g.k * g.k, 0.5));
        let want = to32(&naive::dwconv2d(&to64(&x), &to64(&w), g));
        for threads in [1, 2, 3] {
            let err = max_rel_err(&cpu(threads).dwconv2d(&x, &w, g), &want);
            println!("dwconv2d {g} ({threads} threads): max rel err {err:.2e}");
            assert!(err < 1e-5);
        }
    }
}

#[test]
fn dwconv2d_backward_matches_finite_differences() {
    let mut rng = Rng::new(29);
    let h = 1e-5;
    for g in dw_geoms() {
        let (x, w) = (randn(&mut rng, g.in_len(), 1.0), randn(&mut rng, g.c_in * g.k * g.k, 0.5));
        let r = randn(&mut rng, g.out_len(), 1.0);
        let (x64, w64, r64) = (to64(&x), to64(&w), to64(&r));
        let fd = |v: &[f64], f: &dyn Fn(&[f64]) -> Vec<f64>| -> Vec<f32> {
            let mut vp = v.to_vec();
            (0..v.len())
                .map(|i| {
                    vp[i] = v[i] + h;
                    let up = naive::dot(&r64, &f(&vp));
                    vp[i] = v[i] - h;
                    let down = naive::dot(&r64, &f(&vp));
                    vp[i] = v[i];
                    ((up - down) / (2.0 * h)) as f32
                })
                .collect()
        };
        let dx_fd = fd(&x64, &|x| naive::dwconv2d(x, &w64, g));
        let dw_fd = fd(&w64, &|w| naive::dwconv2d(&x64, w, g));
        for threads in [1, 2] {
            let cpu = cpu(threads);
            let ex = max_rel_err(&cpu.dwconv2d_bwd_data(&r, &w, g), &dx_fd);
            let ew = max_rel_err(&cpu.dwconv2d_bwd_weight(&r, &x, g), &dw_fd);
            println!(
                "dwconv2d {g} ({threads} threads): max rel err vs finite differences: data {ex:.2e}, weight {ew:.2e}"
            );
            assert!(ex < 1e-4 && ew < 1e-4);
        }
    }
}
