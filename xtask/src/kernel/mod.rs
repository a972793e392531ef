//! Kernels: source trees, config fragments, builds, and distros' own built kernels.

pub mod build;
pub mod config;
pub mod distro;
pub mod source;
