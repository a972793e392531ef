//! The x86_64 half of the seeded-bugs gallery on the debug profile: every planted bug must fail its cell with the declared detector's category.
//!
//! Ignored by default (`cargo test -- --include-ignored` runs it, as CI does):
//! it builds the x86_64 debug kernel (SMP, lockdep, KASAN, kmemleak) when the
//! cache lacks it and boots each of the nine variants alone.

use std::path::Path;
use std::process::Command;

#[test]
#[ignore = "builds the x86_64 debug kernel and boots nine guests: needs root, the Debian archive and ~15 min (CI runs it)"]
fn every_planted_bug_is_caught_with_its_category_on_x86_64_debug() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let output_dir = tempfile::tempdir().unwrap();
    let args = ["test", "--suite", "seeded-bugs", "--arch", "x86_64", "--profile", "debug"];
    eprintln!("\n$ cargo xtask {}", args.join(" "));
    let run = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(args)
        .current_dir(repo)
        .env("NO_COLOR", "1")
        .env("KFORGE_OUTPUT_DIR", output_dir.path())
        .output()
        .unwrap();
    // The progress and the catch table are on stderr.
    let table = String::from_utf8_lossy(&run.stderr);
    eprintln!("{table}");
    let drivers = std::fs::read_dir(repo.join("drivers"))
        .unwrap()
        .filter(|entry| entry.as_ref().unwrap().file_name().to_string_lossy().starts_with("seeded-"))
        .count();
    assert!(drivers >= 9, "the gallery shrank to {drivers} variants");
    let rows: Vec<&str> = table
        .lines()
        .filter(|line| line.contains(" x86_64 ") && (line.ends_with("caught") || line.ends_with("MISSED")))
        .collect();
    assert_eq!(rows.len(), drivers, "one catch-table row per variant:\n{table}");
    // Every planted bug must be caught with its declared category (N/N).
    let missed: Vec<&&str> = rows.iter().filter(|row| !row.ends_with("caught")).collect();
    assert!(missed.is_empty(), "a planted bug was missed or caught with the wrong category:\n{table}");
    assert_eq!(run.status.code(), Some(0), "the suite's exit status disagrees with its table:\n{table}");
    for class in [
        "lock-order inversion",
        "sleeping under a spinlock",
        "lost update between two CPUs",
        "use-after-free",
        "leaked allocation",
        "DMA buffer freed while the device writes it",
    ] {
        let row = rows.iter().find(|line| line.starts_with(class)).unwrap_or(&"");
        assert!(row.ends_with("caught"), "{class}: {row:?}");
    }
}
