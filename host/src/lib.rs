//! bnas: binary neural architecture search, training on WGSL GPU kernels or the CPU, export
//! to a bit-packed format for microcontrollers and to ONNX, and verification across runtimes.

pub mod engine;
pub mod rng;
pub mod data;
pub mod nn;
pub mod report;
pub mod device_run;
