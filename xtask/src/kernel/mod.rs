//! Kernels: source trees, config fragments, the make plumbing, builds, and distros' own built kernels.

pub mod build;
pub mod config;
pub mod distro;
pub mod make;
pub mod source;
