//! GPU kernels against their CPU twin.

use super::*;
use crate::engine::Backend;

fn gpu() -> &'static Gpu {
    static GPU: std::sync::OnceLock<Gpu> = std::sync::OnceLock::new();
    GPU.get_or_init(|| Gpu::new(None).unwrap_or_else(|e| panic!("{e}")))
}

#[test]
fn smoke_add() {
    let g = gpu();
    println!("{}", g.describe());
    let a = g.upload(&[1.0, 2.0, 3.0]);
    let b = g.upload(&[10.0, 20.0, 30.0]);
    let c = g.add(&a, &b);
    assert_eq!(g.download(&c), vec![11.0, 22.0, 33.0]);
}
