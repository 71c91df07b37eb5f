//! The training engine: a primitive set (`Backend`) with two implementations, and a
//! define-by-run tape for reverse-mode autodiff over either.

pub mod backend;
pub mod bench;
pub mod cpu;
pub mod geom;
pub mod gpu;
#[cfg(test)]
pub mod naive;
pub mod ops;
pub mod optim;
pub mod params;
pub mod tape;
#[cfg(test)]
pub mod testutil;

pub use backend::{AdamStep, Backend, BinWeights, BnGrads, BnMode, BnOut, SgdStep};
pub use geom::{ChanGeom, ConvGeom, MatGeom, PoolGeom, ShapeError};
pub use ops::{BnStats, ConvSpec, SignInput};
pub use params::{BufId, Buffers, Group, ParamId, ParamStore};
pub use tape::{Grads, Tape, Var};
