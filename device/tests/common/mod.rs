//! Shared helpers: the generator lives in the crate (`bnas_device::sample`).
#![allow(unused_imports)]
pub use bnas_device::sample::{aligned, random_net, NetSpec, Rng};
