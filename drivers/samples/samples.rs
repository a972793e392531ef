//! The kernel's own Rust samples as a kforge suite: the modules come from the kernel build (`samples/rust/`), so this package holds only their guest tests and metadata.
