//! The kernel's own Rust PCI driver sample as a kforge suite: the module comes from the kernel build (`samples/rust/rust_driver_pci.ko`), so this package holds only its guest test and metadata.
