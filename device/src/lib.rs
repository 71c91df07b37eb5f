//! bnas-device: the packed model format of bnas and its XNOR-popcount inference.
//!
//! `#![no_std]`, no heap, no panics: [`Model::parse`] validates a model file in place (flash),
//! [`Model::arena_bytes`] says how much RAM inference needs, and [`Model::infer`] runs one image
//! into caller-owned buffers. The byte layout is in `FORMAT.md`.
//!
//! With feature `std`: `build::ModelBuilder` writes the format (the host exporter's side) and
//! [`reference`](mod@reference) is a plain float interpreter of the same format, the twin the
//! kernels are tested against.
#![cfg_attr(not(any(feature = "std", test)), no_std)]
#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing))]

#[cfg(target_endian = "big")]
compile_error!("bnas-device reads the model's little-endian words in place: big-endian targets are not supported");

mod error;
pub mod format;
mod infer;
pub mod kernels;
pub mod link;
mod model;
pub mod popcount;

#[cfg(feature = "std")]
pub mod build;
#[cfg(feature = "std")]
mod plan;
#[cfg(any(feature = "std", test))]
pub mod reference;
#[cfg(feature = "std")]
pub mod sample;

pub use error::Error;
pub use infer::Input;
pub use model::{bin_scratch_words, BinConvNode, ConvGeom, ConvNode, Model, Node, Nodes, TensorId, TensorInfo};

/// A xorshift generator for the crate's tests (no std needed).
#[cfg(test)]
pub(crate) fn xorshift32(mut seed: u32) -> impl FnMut() -> u32 {
    move || {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        seed
    }
}
