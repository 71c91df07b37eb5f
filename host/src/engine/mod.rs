//! The training engine: a primitive set (`Backend`) with two implementations, and a
//! define-by-run tape for reverse-mode autodiff over either.

pub mod backend;
pub mod cpu;
pub mod geom;
pub mod gpu;
#[cfg(test)]
pub mod testutil;

pub use backend::{AdamStep, Backend, BinWeights, BnGrads, BnMode, BnOut, SgdStep};
pub use geom::{ChanGeom, ConvGeom, MatGeom, PoolGeom, ShapeError};
