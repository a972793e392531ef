//! The kernel crate's Rust doctests as a kforge suite: `CONFIG_RUST_KERNEL_DOCTESTS` builds them into the kernel as the KUnit suite `rust_doctests_kernel`; this package holds only the metadata.
