//! The CPU backend (see `Backend`).
