//! Kernels: source trees, config fragments and builds.

pub mod build;
pub mod config;
pub mod source;
