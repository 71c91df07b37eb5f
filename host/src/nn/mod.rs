//! Networks: genotypes, the final network on the cell template T_B, and the search supernet.

pub mod genotype;
pub mod layers;
pub mod network;
pub mod supernet;

pub use genotype::{Cell, Genotype, Op};
pub use network::{NetConfig, Network, Template};
#[cfg(test)]
mod gpu_agreement;
#[cfg(test)]
mod gpu_search_agreement;
#[cfg(test)]
mod tests;
