//! Every GPU kernel against its CPU twin on fresh random inputs, at odd shapes; each test
//! prints the largest relative error it measured (`max_rel_err`) and holds it under 1e-4.
//! A machine without any adapter fails these tests with `GpuError::NoAdapter`'s sentence.

use super::kernel::{validate_wgsl, COMMON};
use super::*;
use crate::engine::cpu::Cpu;
use crate::engine::testutil::{max_rel_err, randn};
use crate::engine::{AdamStep, Backend, BnMode, ChanGeom, ConvGeom, MatGeom, PoolGeom, SgdStep};
use crate::rng::Rng;

const TOL: f64 = 1e-4;

fn gpu() -> &'static Gpu {
    static GPU: std::sync::OnceLock<Gpu> = std::sync::OnceLock::new();
    GPU.get_or_init(|| Gpu::new(None).unwrap_or_else(|e| panic!("{e}")))
}

fn cpu() -> &'static Cpu {
    static CPU: std::sync::OnceLock<Cpu> = std::sync::OnceLock::new();
    CPU.get_or_init(|| Cpu::new(Some(1)).unwrap_or_else(|e| panic!("{e}")))
}

/// Prints and bounds the error of a GPU result against the CPU's.
fn check(what: &str, gpu_out: &GpuBuf, cpu_out: &[f32]) -> f64 {
    let got = gpu().download(gpu_out);
    let err = max_rel_err(&got, cpu_out);
    println!("{what}: max rel err {err:.2e}");
    assert!(err < TOL, "{what}: max rel err {err:.2e} >= {TOL:.0e}");
    err
}

/// The same random data on both backends.
fn pair(rng: &mut Rng, len: usize) -> (Vec<f32>, GpuBuf) {
    let v = randn(rng, len, 1.0);
    let g = gpu().upload(&v);
    (v, g)
}

/// Every shader as the backends compile it (its file, shared parts, `common.wgsl`), and every
/// file in `shaders/` used: as a shader or as a shared part.
#[test]
fn every_shader_validates_with_naga() {
    let shaders = [
        super::batchnorm::WGSL,
        super::binarize::WGSL,
        super::conv::WGSL,
        super::depthwise::WGSL,
        super::elementwise::WGSL,
        super::loss::WGSL,
        super::matmul::WGSL,
        super::optim::WGSL,
        super::packed::WGSL,
        super::pool::WGSL,
        super::reduce::WGSL,
    ];
    let mut used: std::collections::BTreeSet<&str> = [COMMON.0].into();
    for files in shaders {
        validate_wgsl(files).unwrap_or_else(|e| panic!("{e}"));
        used.extend(files.iter().map(|f| f.0));
    }
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shaders");
    let on_disk: std::collections::BTreeSet<String> = std::fs::read_dir(&dir)
        .expect("shaders/ is readable")
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "wgsl"))
        .map(|path| format!("shaders/{}", path.file_name().unwrap_or_default().to_string_lossy()))
        .collect();
    println!("{} shaders validated, from {} files", shaders.len(), on_disk.len());
    assert_eq!(on_disk.iter().map(String::as_str).collect::<std::collections::BTreeSet<_>>(), used);
}

#[test]
fn shader_errors_name_file_line_and_column() {
    let err = validate_wgsl(&[("shaders/broken.wgsl", "fn f() -> f32 {\n    return 1.0 +;\n}\n")]).unwrap_err();
    println!("{err}");
    assert!(err.starts_with("shaders/broken.wgsl:2:"), "{err}");
    let err = validate_wgsl(&[("shaders/invalid.wgsl", "fn f() -> f32 {\n    return 1u;\n}\n")]).unwrap_err();
    println!("{err}");
    assert!(err.starts_with("shaders/invalid.wgsl:"), "{err}");
    // An error in a shared part appended after the shader names the part and its own line.
    let shader = ("shaders/uses_part.wgsl", "fn f() -> f32 {\n    return g();\n}\n");
    let err = validate_wgsl(&[shader, ("shaders/part.wgsl", "fn g() -> f32 {\n    return 1.0 +;\n}\n")]).unwrap_err();
    println!("{err}");
    assert!(err.starts_with("shaders/part.wgsl:2:"), "{err}");
}

#[test]
fn adapter_selection_and_errors() {
    println!("adapters: {:?}; picked {}, software: {}", Gpu::adapters(), gpu().describe(), gpu().is_software());
    assert!(!Gpu::adapters().is_empty());
    let none = Gpu::new(Some("no-such-adapter-xyz")).err().expect("a filter matching nothing is an error");
    println!("{none}");
    assert!(none.to_string().contains("no-such-adapter-xyz"));
    let msg = GpuError::NoAdapter.to_string();
    assert!(msg.contains("mesa-vulkan-drivers") && !msg.contains('\n'), "{msg}");
}

#[test]
fn elementwise_matches_cpu() {
    let (g, c) = (gpu(), cpu());
    let mut rng = Rng::new(1);
    for len in [1, 35, 1000] {
        let (a, ga) = pair(&mut rng, len);
        let (b, gb) = pair(&mut rng, len);
        let (ca, cb) = (c.upload(&a), c.upload(&b));
        check(&format!("add [{len}]"), &g.add(&ga, &gb), &c.add(&ca, &cb));
        check(&format!("scale [{len}]"), &g.scale(&ga, -0.7), &c.scale(&ca, -0.7));
        check(&format!("relu [{len}]"), &g.relu(&ga), &c.relu(&ca));
        check(&format!("relu_bwd [{len}]"), &g.relu_bwd(&ga, &gb), &c.relu_bwd(&ca, &cb));
        check(&format!("sign_ste_bwd [{len}]"), &g.sign_ste_bwd(&ga, &gb), &c.sign_ste_bwd(&ca, &cb));
        check(
            &format!("scale_by_elem [{len}]"),
            &g.scale_by_elem(&ga, &gb, len - 1),
            &c.scale_by_elem(&ca, &cb, len - 1),
        );
        let (mut gy, mut cy) = (g.copy(&ga), c.copy(&ca));
        g.axpy(&mut gy, 0.3, &gb);
        c.axpy(&mut cy, 0.3, &cb);
        check(&format!("axpy [{len}]"), &gy, &cy);
    }
    let signs = [0.0, -0.0, 1e-30, -1e-30, 2.0, -3.0];
    assert_eq!(g.download(&g.sign(&g.upload(&signs))), c.sign(&signs.to_vec()), "sign(+-0) must be +1");
    println!("sign: exact on +-0, +-tiny, +-large");
}

#[test]
fn channel_ops_match_cpu() {
    let (g, c) = (gpu(), cpu());
    let mut rng = Rng::new(2);
    for cg in [ChanGeom { n: 1, c: 3, hw: 35 }, ChanGeom { n: 3, c: 5, hw: 7 }, ChanGeom { n: 2, c: 1, hw: 1 }] {
        let (x, gx) = pair(&mut rng, cg.len());
        let (s, gs) = pair(&mut rng, cg.c);
        let (b, gb) = pair(&mut rng, cg.c);
        let (ns, gns) = pair(&mut rng, cg.n);
        let (cx, cs, cb) = (c.upload(&x), c.upload(&s), c.upload(&b));
        let name = format!("[{}, {}, {}]", cg.n, cg.c, cg.hw);
        check(
            &format!("channel_affine {name}"),
            &g.channel_affine(&gx, &gs, Some(&gb), cg),
            &c.channel_affine(&cx, &cs, Some(&cb), cg),
        );
        check(
            &format!("channel_affine no bias {name}"),
            &g.channel_affine(&gx, &gs, None, cg),
            &c.channel_affine(&cx, &cs, None, cg),
        );
        check(
            &format!("sample_scale {name}"),
            &g.sample_scale(&gx, &gns, cg),
            &c.sample_scale(&cx, &c.upload(&ns), cg),
        );
        check(&format!("channel_sum {name}"), &g.channel_sum(&gx, cg), &c.channel_sum(&cx, cg));
        check(&format!("global_avg_pool {name}"), &g.global_avg_pool(&gx, cg), &c.global_avg_pool(&cx, cg));
        let (d, gd) = pair(&mut rng, cg.n * cg.c);
        check(
            &format!("global_avg_pool_bwd {name}"),
            &g.global_avg_pool_bwd(&gd, cg),
            &c.global_avg_pool_bwd(&c.upload(&d), cg),
        );
        let (rows, cols) = (cg.n * cg.hw, cg.c);
        check(
            &format!("add_row_bias [{rows}, {cols}]"),
            &g.add_row_bias(&gx, &gb, rows, cols),
            &c.add_row_bias(&cx, &cb, rows, cols),
        );
        check(&format!("sum_rows [{rows}, {cols}]"), &g.sum_rows(&gx, rows, cols), &c.sum_rows(&cx, rows, cols));
    }
}

#[test]
fn reductions_and_mixing_match_cpu() {
    let (g, c) = (gpu(), cpu());
    let mut rng = Rng::new(3);
    let lens = [7usize, 300, 70_000];
    let data: Vec<(Vec<f32>, GpuBuf)> = lens.iter().map(|&l| pair(&mut rng, l)).collect();
    let cpu_bufs: Vec<Vec<f32>> = data.iter().map(|(v, _)| c.upload(v)).collect();
    let gpu_refs: Vec<&GpuBuf> = data.iter().map(|(_, b)| b).collect();
    let cpu_refs: Vec<&Vec<f32>> = cpu_bufs.iter().collect();
    check("sum_squares of [7], [300], [70000]", &g.sum_squares(&gpu_refs), &c.sum_squares(&cpu_refs));

    for len in [1usize, 300, 70_000] {
        let xs: Vec<(Vec<f32>, GpuBuf)> = (0..4).map(|_| pair(&mut rng, len)).collect();
        let (y, gy) = pair(&mut rng, len);
        let (w, gw) = pair(&mut rng, 4);
        let cxs: Vec<Vec<f32>> = xs.iter().map(|(v, _)| c.upload(v)).collect();
        let gx: Vec<&GpuBuf> = xs.iter().map(|(_, b)| b).collect();
        let cx: Vec<&Vec<f32>> = cxs.iter().collect();
        check(&format!("dots 4 x [{len}]"), &g.dots(&gx, &gy), &c.dots(&cx, &c.upload(&y)));
        check(&format!("weighted_sum 4 x [{len}]"), &g.weighted_sum(&gx, &gw), &c.weighted_sum(&cx, &c.upload(&w)));
    }

    let (n, hw, chans) = (3, 5, [2usize, 1, 4]);
    let parts: Vec<(Vec<f32>, GpuBuf)> = chans.iter().map(|&ch| pair(&mut rng, n * ch * hw)).collect();
    let cparts: Vec<Vec<f32>> = parts.iter().map(|(v, _)| c.upload(v)).collect();
    let gcat = g.concat_channels(&parts.iter().map(|(_, b)| b).collect::<Vec<_>>(), &chans, n, hw);
    let ccat = c.concat_channels(&cparts.iter().collect::<Vec<_>>(), &chans, n, hw);
    check("concat_channels [3, 2+1+4, 5]", &gcat, &ccat);
    check(
        "slice_channels [3, 7, 5] @2..5",
        &g.slice_channels(&gcat, n, 7, hw, 2, 3),
        &c.slice_channels(&ccat, n, 7, hw, 2, 3),
    );
    check("copy", &g.copy(&gcat), &ccat);
    check("zeros", &g.zeros(5), &c.zeros(5));
}

#[test]
fn matmul_matches_cpu() {
    let (g, c) = (gpu(), cpu());
    let mut rng = Rng::new(4);
    // (m, k, n): odd sizes, tile-crossing sizes, a vector, and a long K that is split.
    for (m, k, n) in [(7, 5, 3), (1, 1, 1), (65, 33, 130), (3, 5000, 2), (10, 64, 1)] {
        for (trans_a, trans_b) in [(false, false), (true, false), (false, true), (true, true)] {
            let mg = MatGeom { m, k, n, trans_a, trans_b };
            let (a, ga) = pair(&mut rng, m * k);
            let (b, gb) = pair(&mut rng, k * n);
            let what = format!("matmul m{m} k{k} n{n} ta{} tb{}", trans_a as u8, trans_b as u8);
            check(&what, &g.matmul(&ga, &gb, mg), &c.matmul(&c.upload(&a), &c.upload(&b), mg));
        }
    }
}

fn conv_geoms() -> Vec<ConvGeom> {
    let geom = |n, c_in, h, w, c_out, k, stride, pad, dil| ConvGeom { n, c_in, h, w, c_out, k, stride, pad, dil };
    vec![
        geom(1, 3, 7, 5, 4, 3, 1, 1, 1),   // odd 7x5, batch 1
        geom(2, 5, 9, 9, 6, 3, 2, 1, 1),   // stride 2
        geom(2, 4, 8, 8, 3, 3, 1, 2, 2),   // dilation 2
        geom(1, 3, 9, 7, 5, 5, 1, 2, 1),   // 5x5
        geom(2, 3, 11, 11, 4, 5, 2, 4, 2), // 5x5 dilation 2 stride 2
        geom(2, 4, 6, 6, 8, 1, 1, 0, 1),   // 1x1
        geom(2, 3, 6, 6, 4, 2, 2, 0, 1),   // 2x2 stride 2
        geom(2, 17, 9, 9, 70, 3, 1, 1, 1), // crosses 64-wide tiles
    ]
}

#[test]
fn conv_matches_cpu() {
    let (g, c) = (gpu(), cpu());
    let mut rng = Rng::new(5);
    for cg in conv_geoms() {
        cg.check().expect("test geometry");
        let (x, gx) = pair(&mut rng, cg.in_len());
        let (w, gw) = pair(&mut rng, cg.weight_len());
        let (b, gb) = pair(&mut rng, cg.c_out);
        let (dy, gdy) = pair(&mut rng, cg.out_len());
        let (cx, cw, cdy) = (c.upload(&x), c.upload(&w), c.upload(&dy));
        check(
            &format!("conv2d {cg}"),
            &g.conv2d(&gx, &gw, Some(&gb), cg),
            &c.conv2d(&cx, &cw, Some(&c.upload(&b)), cg),
        );
        check(&format!("conv2d_bwd_data {cg}"), &g.conv2d_bwd_data(&gdy, &gw, cg), &c.conv2d_bwd_data(&cdy, &cw, cg));
        check(
            &format!("conv2d_bwd_weight {cg}"),
            &g.conv2d_bwd_weight(&gdy, &gx, cg),
            &c.conv2d_bwd_weight(&cdy, &cx, cg),
        );
    }
}

#[test]
fn batch_norm_matches_cpu() {
    let (g, c) = (gpu(), cpu());
    let mut rng = Rng::new(6);
    for (cg, affine) in [
        (ChanGeom { n: 3, c: 5, hw: 7 }, true),
        (ChanGeom { n: 1, c: 3, hw: 35 }, false),
        (ChanGeom { n: 4, c: 2, hw: 1 }, true),
    ] {
        let name = format!("[{}, {}, {}] affine {affine}", cg.n, cg.c, cg.hw);
        let x: Vec<f32> = randn(&mut rng, cg.len(), 2.0).iter().map(|v| v + 0.5).collect();
        let (dy, gdy) = pair(&mut rng, cg.len());
        let (gamma, ggamma) = pair(&mut rng, cg.c);
        let (beta, gbeta) = pair(&mut rng, cg.c);
        let (rm, rv) = (randn(&mut rng, cg.c, 0.1), vec![1.5; cg.c]);
        let gx = g.upload(&x);
        let (cx, cgamma, cbeta) = (c.upload(&x), c.upload(&gamma), c.upload(&beta));
        let (gg, gb) = if affine { (Some(&ggamma), Some(&gbeta)) } else { (None, None) };
        let (cg_, cb_) = if affine { (Some(&cgamma), Some(&cbeta)) } else { (None, None) };

        let (mut grm, mut grv, mut crm, mut crv) = (g.upload(&rm), g.upload(&rv), rm.clone(), rv.clone());
        let gout = g.batch_norm(
            &gx,
            gg,
            gb,
            BnMode::Train { running_mean: &mut grm, running_var: &mut grv, momentum: 0.1 },
            1e-5,
            cg,
        );
        let cout = c.batch_norm(
            &cx,
            cg_,
            cb_,
            BnMode::Train { running_mean: &mut crm, running_var: &mut crv, momentum: 0.1 },
            1e-5,
            cg,
        );
        check(&format!("batch_norm train y {name}"), &gout.y, &cout.y);
        check(&format!("batch_norm train mean {name}"), &gout.mean, &cout.mean);
        check(&format!("batch_norm train inv_std {name}"), &gout.inv_std, &cout.inv_std);
        check(&format!("batch_norm running_mean {name}"), &grm, &crm);
        check(&format!("batch_norm running_var {name}"), &grv, &crv);
        let gd = g.batch_norm_bwd(&gx, &gdy, &gout.mean, &gout.inv_std, gg, true, cg);
        let cd = c.batch_norm_bwd(&cx, &c.upload(&dy), &cout.mean, &cout.inv_std, cg_, true, cg);
        check(&format!("batch_norm_bwd train dx {name}"), &gd.dx, &cd.dx);
        if affine {
            check(
                &format!("batch_norm_bwd dgamma {name}"),
                gd.dgamma.as_ref().expect("dgamma"),
                cd.dgamma.as_ref().expect("dgamma"),
            );
            check(
                &format!("batch_norm_bwd dbeta {name}"),
                gd.dbeta.as_ref().expect("dbeta"),
                cd.dbeta.as_ref().expect("dbeta"),
            );
        }

        let gout = g.batch_norm(&gx, gg, gb, BnMode::Eval { running_mean: &grm, running_var: &grv }, 1e-5, cg);
        let cout = c.batch_norm(&cx, cg_, cb_, BnMode::Eval { running_mean: &crm, running_var: &crv }, 1e-5, cg);
        check(&format!("batch_norm eval y {name}"), &gout.y, &cout.y);
        let gd = g.batch_norm_bwd(&gx, &gdy, &gout.mean, &gout.inv_std, gg, false, cg);
        let cd = c.batch_norm_bwd(&cx, &c.upload(&dy), &cout.mean, &cout.inv_std, cg_, false, cg);
        check(&format!("batch_norm_bwd eval dx {name}"), &gd.dx, &cd.dx);
    }
}

#[test]
fn pools_match_cpu() {
    let (g, c) = (gpu(), cpu());
    let mut rng = Rng::new(7);
    for pg in [
        PoolGeom { n: 1, c: 2, h: 7, w: 5, stride: 1 },
        PoolGeom { n: 2, c: 3, h: 7, w: 5, stride: 2 },
        PoolGeom { n: 2, c: 1, h: 8, w: 8, stride: 2 },
        PoolGeom { n: 1, c: 1, h: 1, w: 1, stride: 1 },
    ] {
        let name = format!("[{}, {}, {}, {}] stride {}", pg.n, pg.c, pg.h, pg.w, pg.stride);
        // Few distinct values so windows hold ties: the first maximum must win on both.
        let x: Vec<f32> = randn(&mut rng, pg.in_len(), 1.0).iter().map(|v| (v * 1.5).round()).collect();
        let (dy, gdy) = pair(&mut rng, pg.out_len());
        let (gx, cx, cdy) = (g.upload(&x), c.upload(&x), c.upload(&dy));
        check(&format!("max_pool {name}"), &g.max_pool(&gx, pg), &c.max_pool(&cx, pg));
        check(&format!("max_pool_bwd (ties) {name}"), &g.max_pool_bwd(&gx, &gdy, pg), &c.max_pool_bwd(&cx, &cdy, pg));
        check(&format!("avg_pool {name}"), &g.avg_pool(&gx, pg), &c.avg_pool(&cx, pg));
        check(&format!("avg_pool_bwd {name}"), &g.avg_pool_bwd(&gdy, pg), &c.avg_pool_bwd(&cdy, pg));
    }
}

#[test]
fn losses_match_cpu() {
    let (g, c) = (gpu(), cpu());
    let mut rng = Rng::new(8);
    for (rows, k, smoothing) in [(1, 10, 0.1), (5, 7, 0.0), (3, 300, 0.1)] {
        let name = format!("[{rows}, {k}] smoothing {smoothing}");
        let x = randn(&mut rng, rows * k, 3.0);
        let labels: Vec<f32> = (0..rows).map(|_| rng.below(k) as f32).collect();
        let (gx, cx) = (g.upload(&x), c.upload(&x));
        let (gl, gg) = g.softmax_xent(&gx, &g.upload(&labels), rows, k, smoothing);
        let (cl, cg) = c.softmax_xent(&cx, &c.upload(&labels), rows, k, smoothing);
        check(&format!("softmax_xent loss {name}"), &gl, &cl);
        check(&format!("softmax_xent grad {name}"), &gg, &cg);
        check(&format!("softmax_rows {name}"), &g.softmax_rows(&gx, rows, k), &c.softmax_rows(&cx, rows, k));
        let (cdy, gdy) = pair(&mut rng, rows * k);
        let (gy, cy) = (g.softmax_rows(&gx, rows, k), c.softmax_rows(&cx, rows, k));
        check(
            &format!("softmax_rows_bwd {name}"),
            &g.softmax_rows_bwd(&gy, &gdy, rows, k),
            &c.softmax_rows_bwd(&cy, &cdy, rows, k),
        );
        let (gh, ghg) = g.softmax_entropy(&gx, rows, k);
        let (ch, chg) = c.softmax_entropy(&cx, rows, k);
        check(&format!("softmax_entropy {name}"), &gh, &ch);
        check(&format!("softmax_entropy grad {name}"), &ghg, &chg);
    }
}

#[test]
fn depthwise_conv_matches_cpu() {
    let (g, c) = (gpu(), cpu());
    let mut rng = Rng::new(31);
    for cg in crate::engine::cpu::dw_geoms() {
        let (x, gx) = pair(&mut rng, cg.in_len());
        let (w, gw) = pair(&mut rng, cg.c_in * cg.k * cg.k);
        let (dy, gdy) = pair(&mut rng, cg.out_len());
        check(&format!("dwconv2d {cg}"), &g.dwconv2d(&gx, &gw, cg), &c.dwconv2d(&x, &w, cg));
        check(
            &format!("dwconv2d_bwd_data {cg}"),
            &g.dwconv2d_bwd_data(&gdy, &gw, cg),
            &c.dwconv2d_bwd_data(&dy, &w, cg),
        );
        check(
            &format!("dwconv2d_bwd_weight {cg}"),
            &g.dwconv2d_bwd_weight(&gdy, &gx, cg),
            &c.dwconv2d_bwd_weight(&dy, &x, cg),
        );
    }
}

#[test]
fn add_channels_matches_cpu() {
    let (g, c) = (gpu(), cpu());
    let mut rng = Rng::new(37);
    let (n, c_total, hw) = (3, 7, 10);
    for (offset, len) in [(0, 2), (3, 4), (6, 1)] {
        let (acc, gacc) = pair(&mut rng, n * c_total * hw);
        let (x, gx) = pair(&mut rng, n * len * hw);
        let (mut cacc, mut gacc) = (acc.clone(), gacc);
        c.add_channels(&mut cacc, &x, n, c_total, hw, offset, len);
        g.add_channels(&mut gacc, &gx, n, c_total, hw, offset, len);
        check(&format!("add_channels [{n}, {c_total}, {hw}] at {offset}+{len}"), &gacc, &cacc);
    }
}

#[test]
fn binarize_matches_cpu() {
    let (g, c) = (gpu(), cpu());
    let mut rng = Rng::new(9);
    for (c_out, c_in, kk) in [(4, 3, 9), (1, 1, 25), (5, 7, 1), (3, 16, 9), (6, 1, 9)] {
        let name = format!("[{c_out}, {c_in}, {kk}]");
        let w = randn(&mut rng, c_out * c_in * kk, 0.8);
        let (gr, gw) = pair(&mut rng, w.len());
        let gb = g.binarize_weights(&g.upload(&w), c_out, c_in, kk);
        let cb = c.binarize_weights(&c.upload(&w), c_out, c_in, kk);
        check(&format!("binarize centered {name}"), &gb.centered, &cb.centered);
        check(&format!("binarize sign {name}"), &gb.sign, &cb.sign);
        check(&format!("binarize beta {name}"), &gb.beta, &cb.beta);
        let gd = g.binarize_weights_bwd(&gb.centered, &gb.beta, &gw, c_out, c_in, kk);
        let cd = c.binarize_weights_bwd(&cb.centered, &cb.beta, &c.upload(&gr), c_out, c_in, kk);
        check(&format!("binarize_weights_bwd {name}"), &gd, &cd);
    }
}

#[test]
fn optimizers_match_cpu() {
    let (g, c) = (gpu(), cpu());
    let mut rng = Rng::new(10);
    let len = 1000;
    let p0 = randn(&mut rng, len, 1.0);
    let sgd = SgdStep { lr: 0.05, momentum: 0.9, weight_decay: 3e-4 };
    let (mut gp, mut gm, mut cp, mut cm) = (g.upload(&p0), g.zeros(len), c.upload(&p0), c.zeros(len));
    let (mut ap, mut am, mut av) = (g.upload(&p0), g.zeros(len), g.zeros(len));
    let (mut bp, mut bm, mut bv) = (c.upload(&p0), c.zeros(len), c.zeros(len));
    for t in 1..=3 {
        let (grad, ggrad) = pair(&mut rng, len);
        let cgrad = c.upload(&grad);
        g.sgd_step(&mut gp, &ggrad, &mut gm, 0.5, sgd);
        c.sgd_step(&mut cp, &cgrad, &mut cm, 0.5, sgd);
        let adam = AdamStep { lr: 3e-3, beta1: 0.5, beta2: 0.999, eps: 1e-8, weight_decay: 1e-3, t };
        g.adam_step(&mut ap, &ggrad, &mut am, &mut av, 0.7, adam);
        c.adam_step(&mut bp, &cgrad, &mut bm, &mut bv, 0.7, adam);
    }
    check("sgd 3 steps params", &gp, &cp);
    check("sgd 3 steps momentum", &gm, &cm);
    check("adam 3 steps params", &ap, &bp);
    check("adam 3 steps m", &am, &bm);
    check("adam 3 steps v", &av, &bv);
}

#[test]
fn long_recordings_flush_and_reuse_pooled_buffers() {
    // More dispatches than one pending batch holds, each dropping a temporary that the next
    // iteration's allocation reuses while earlier commands are still unsubmitted.
    let g = gpu();
    let mut rng = Rng::new(11);
    let (x, gx) = pair(&mut rng, 777);
    let mut acc = g.zeros(777);
    let steps = super::kernel::MAX_PENDING + 100;
    for _ in 0..steps {
        let t = g.scale(&gx, 0.5);
        g.axpy(&mut acc, 1.0, &t);
    }
    let expect: Vec<f32> = x.iter().map(|v| v * 0.5 * steps as f32).collect();
    let err = max_rel_err(&g.download(&acc), &expect);
    println!("{steps} x (scale, axpy) across batch flushes: max rel err {err:.2e}");
    assert!(err < TOL);
}

#[test]
fn workgroup_grid_folds_past_65535() {
    // 70,000 channels = 70,000 workgroups: folded into a 2-D grid.
    let (g, c) = (gpu(), cpu());
    let mut rng = Rng::new(12);
    let cg = ChanGeom { n: 1, c: 70_000, hw: 2 };
    let (x, gx) = pair(&mut rng, cg.len());
    check("channel_sum over 70000 channels", &g.channel_sum(&gx, cg), &c.channel_sum(&c.upload(&x), cg));
}
