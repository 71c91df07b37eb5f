//! Choosing a backend: a real GPU when there is one, the CPU backend otherwise.

use anyhow::Result;

use crate::engine::cpu::Cpu;
use crate::engine::gpu::Gpu;
use crate::engine::Backend;

/// What the user asked for (`--backend`, `BNAS_BACKEND`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BackendChoice {
    /// A real GPU if wgpu finds one, else the CPU backend.
    Auto,
    Cpu,
    Gpu,
}

/// The backend in use (one value per process, so the size difference does not matter).
#[allow(clippy::large_enum_variant)]
pub enum Selected {
    Cpu(Cpu),
    Gpu(Gpu),
}

/// Picks the backend and says which on stdout. `adapter` filters GPU adapters by name.
/// `Auto` does not train on a software adapter (lavapipe): the CPU backend is much faster.
pub fn select(choice: BackendChoice, adapter: Option<&str>, threads: Option<usize>) -> Result<Selected> {
    let selected = match choice {
        BackendChoice::Cpu => Selected::Cpu(Cpu::new(threads)?),
        BackendChoice::Gpu => Selected::Gpu(Gpu::new(adapter)?),
        BackendChoice::Auto => match Gpu::new(adapter) {
            Ok(gpu) if !gpu.is_software() => Selected::Gpu(gpu),
            Ok(gpu) => {
                println!("note: the only GPU adapter is a software one ({}); using the CPU backend (--backend gpu forces it)", gpu.describe());
                Selected::Cpu(Cpu::new(threads)?)
            }
            Err(e) => {
                println!("note: no GPU backend ({e}); using the CPU backend");
                Selected::Cpu(Cpu::new(threads)?)
            }
        },
    };
    println!("backend: {}", describe(&selected));
    Ok(selected)
}

pub fn describe(s: &Selected) -> String {
    match s {
        Selected::Cpu(c) => c.describe(),
        Selected::Gpu(g) => g.describe(),
    }
}

/// Runs `$body` with `$b` bound to the selected backend (monomorphized for each).
#[macro_export]
macro_rules! with_backend {
    ($sel:expr, |$b:ident| $body:expr) => {
        match $sel {
            $crate::select::Selected::Cpu(ref $b) => $body,
            $crate::select::Selected::Gpu(ref $b) => $body,
        }
    };
}
