//! Exports of a trained network: the packed model for the device, the ONNX graph (and tract
//! to run it), and the model folder that holds both.

pub mod bundle;
pub mod onnx;
pub mod packed;
pub mod tract_run;

#[cfg(test)]
mod tests;
