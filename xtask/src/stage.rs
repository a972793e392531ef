//! Failure categories of a matrix cell and the error tag that carries one through `anyhow` chains.

use serde::{Deserialize, Serialize};

/// Why a cell did not pass (results.json `category`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Category {
    Toolchain,
    Config,
    Build,
    Image,
    BootTimeout,
    Panic,
    TestFail,
    Infrastructure,
    /// Kernel bug detectors (see `console::Detector`).
    Lockdep,
    Kasan,
    AtomicSleep,
    RustPanic,
    Overflow,
    Memleak,
    /// A device's DMA to memory it no longer owns, reported by the machine's IOMMU.
    Dma,
    Warning,
    Hang,
}

impl Category {
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Toolchain => "toolchain",
            Category::Config => "config",
            Category::Build => "build",
            Category::Image => "image",
            Category::BootTimeout => "boot-timeout",
            Category::Panic => "panic",
            Category::TestFail => "test-fail",
            Category::Infrastructure => "infrastructure",
            Category::Lockdep => "lockdep",
            Category::Kasan => "kasan",
            Category::AtomicSleep => "atomic-sleep",
            Category::RustPanic => "rust-panic",
            Category::Overflow => "overflow",
            Category::Memleak => "memleak",
            Category::Dma => "dma",
            Category::Warning => "warning",
            Category::Hang => "hang",
        }
    }
}

/// Context attached to an error to say which stage failed; shown as its message.
#[derive(Debug, Clone)]
pub struct StageFailed {
    pub category: Category,
    pub message: String,
}

impl std::fmt::Display for StageFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for StageFailed {}

/// Tags an error with the stage it belongs to.
pub trait StageContext<T> {
    fn stage(self, category: Category, message: impl Into<String>) -> anyhow::Result<T>;
}

impl<T> StageContext<T> for anyhow::Result<T> {
    fn stage(self, category: Category, message: impl Into<String>) -> anyhow::Result<T> {
        self.map_err(|err| {
            // Keep the innermost (most precise) category if one is already there.
            if category_of(&err).is_some() {
                err
            } else {
                err.context(StageFailed { category, message: message.into() })
            }
        })
    }
}

/// The category recorded in an error chain, if any.
pub fn category_of(err: &anyhow::Error) -> Option<Category> {
    // `downcast_ref` sees tags added with `.context(..)`; `chain` sees ones built with `Error::new`.
    err.downcast_ref::<StageFailed>()
        .or_else(|| err.chain().find_map(|cause| cause.downcast_ref::<StageFailed>()))
        .map(|stage| stage.category)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn innermost_category_wins() {
        let inner: anyhow::Result<()> = Err(anyhow::anyhow!("dropped CONFIG_RUST"));
        let tagged =
            inner.stage(Category::Config, "kernel config failed").stage(Category::Build, "kernel build failed");
        let err = tagged.unwrap_err();
        assert_eq!(category_of(&err), Some(Category::Config));
        assert_eq!(err.to_string(), "kernel config failed");
    }
}
