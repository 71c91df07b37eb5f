//! bnas: binary neural architecture search, training on WGSL GPU kernels or the CPU, export
//! to a bit-packed format for microcontrollers and to ONNX, and verification across runtimes.

pub mod bench;
pub mod checkpoint;
pub mod cli;
pub mod data;
pub mod demo;
pub mod device_run;
pub mod engine;
pub mod export;
pub mod info;
pub mod interrupt;
pub mod nn;
pub mod report;
pub mod rng;
pub mod search;
pub mod select;
pub mod train;
pub mod verify;

#[cfg(test)]
mod run_tests;
#[cfg(test)]
mod test_dirs;
