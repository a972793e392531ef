//! The HTML report as a browser draws it: headless Chromium renders a report with a passing and a failing cell; the test checks the DOM and the colours of a screenshot.
//!
//! Ignored by default (`cargo test -- --include-ignored` runs it, as CI does):
//! it needs `chromium`, which `cargo xtask report html --screenshot` installs
//! with apt when it may (root or password-less sudo). Takes a few seconds: two
//! Chromium starts.

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Matrix cell backgrounds, as xtask/src/html.rs draws them.
const PASS: [u8; 3] = [0x1a, 0x7f, 0x37];
const FAIL: [u8; 3] = [0xcf, 0x22, 0x2e];
/// A cell is about 250 x 80 pixels; its text and links cover part of it.
const MIN_CELL_PIXELS: usize = 8000;
const TIMEOUT: Duration = Duration::from_secs(120);

fn scratch() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("kforge-html-report-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// results.json with x86_64 passing and arm64 failing (with a `<script>` in
/// a diagnostic). x86_64's logs lie under `dir`, arm64's build log outside it.
fn write_fixture(dir: &Path, outside: &Path) -> PathBuf {
    let x86_dir = dir.join("cells/7.2-x86_64");
    std::fs::create_dir_all(&x86_dir).unwrap();
    for name in ["console.log", "ktap.json", "kernel-build.log"] {
        std::fs::write(x86_dir.join(name), "log\n").unwrap();
    }
    std::fs::create_dir_all(outside).unwrap();
    let arm_build_log = outside.join("kernel-build.log");
    std::fs::write(&arm_build_log, "log\n").unwrap();
    let results = serde_json::json!({
        "kforge_version": "0.1.0",
        "complete": true,
        "run": { "wall_seconds": 1500.0, "jobs": 2, "build_cpu_seconds": 2700.0, "core_utilisation": 0.9 },
        "cells": [
            {
                "id": "7.2-x86_64", "arch": "x86_64", "kernel": "7.2", "toolchain": "sid", "status": "pass",
                "log": x86_dir.join("console.log"),
                "build_log": x86_dir.join("kernel-build.log"),
                "ktap": x86_dir.join("ktap.json"),
                "tests": [
                    { "name": "fifo.load", "status": "pass" },
                    { "name": "fifo.roundtrip", "status": "pass", "diagnostics": ["40 bytes came back unchanged"] },
                    { "name": "edu.load", "status": "skip", "reason": "edu needs PCI" }
                ],
                "totals": { "pass": 2, "fail": 0, "skip": 1, "error": 0 },
                "timings": { "build_seconds": 700.0, "build_cpu_seconds": 1300.0, "boot_seconds": 9.5 }
            },
            {
                "id": "7.2-arm64", "arch": "arm64", "kernel": "7.2", "toolchain": "sid", "status": "fail",
                "category": "test-fail",
                "log": dir.join("cells/7.2-arm64/console.log"),
                "build_log": arm_build_log,
                "tests": [
                    { "name": "fifo.load", "status": "pass" },
                    {
                        "name": "fifo.roundtrip", "status": "fail",
                        "diagnostics": ["expected 40 bytes, got 39", "<script>document.title='owned'</script>"]
                    }
                ],
                "totals": { "pass": 1, "fail": 1, "skip": 0, "error": 0 },
                "timings": { "build_seconds": 800.0, "build_cpu_seconds": 1400.0, "boot_seconds": 4.4 }
            }
        ]
    });
    let path = dir.join("results.json");
    std::fs::write(&path, serde_json::to_string_pretty(&results).unwrap()).unwrap();
    path
}

/// Runs headless Chromium on `page` with `args`, stdout into `stdout`, in its
/// own process group, which is killed if it is still running at the timeout.
fn chromium(page: &Path, args: &[&str], stdout: &Path, profile: &Path) {
    let stderr = stdout.with_extension("stderr");
    let mut child = Command::new("chromium")
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run"])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(format!("file://{}", page.display()))
        .env("HOME", profile)
        .env("XDG_CONFIG_HOME", profile)
        .env("XDG_CACHE_HOME", profile)
        .stdin(Stdio::null())
        .stdout(File::create(stdout).unwrap())
        .stderr(File::create(&stderr).unwrap())
        .process_group(0)
        .spawn()
        .expect("cannot start chromium");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > TIMEOUT {
            // SAFETY: kill(2) on the process group we created for chromium.
            unsafe { libc::kill(-(child.id() as libc::pid_t), libc::SIGKILL) };
            let _ = child.wait();
            panic!("chromium {args:?} ran longer than {TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let errors = std::fs::read_to_string(&stderr).unwrap_or_default();
    assert!(status.success(), "chromium {args:?} failed ({status}):\n{errors}");
}

/// Pixels of an RGB(A) PNG within a small distance of `colour`, and the mean
/// row they sit on.
fn pixels_of(png_path: &Path, colour: [u8; 3]) -> (usize, f64) {
    let file = std::io::BufReader::new(File::open(png_path).unwrap());
    let mut decoder = png::Decoder::new(file);
    decoder.set_transformations(png::Transformations::normalize_to_color8());
    let mut reader = decoder.read_info().unwrap();
    let mut buffer = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buffer).unwrap();
    let channels = info.color_type.samples();
    assert!(channels >= 3, "expected an RGB screenshot, got {:?}", info.color_type);
    let (mut count, mut rows) = (0usize, 0usize);
    for (row, line) in buffer[..info.buffer_size()].chunks(info.line_size).enumerate() {
        for pixel in line.chunks(channels) {
            if pixel.iter().zip(colour).all(|(&have, want)| have.abs_diff(want) <= 6) {
                count += 1;
                rows += row;
            }
        }
    }
    (count, if count == 0 { 0.0 } else { rows as f64 / count as f64 })
}

#[test]
#[ignore = "needs chromium, which kforge installs with apt (root or password-less sudo)"]
fn chromium_draws_the_matrix_with_a_red_failing_cell() {
    let started = Instant::now();
    let dir = scratch();
    let outside = std::env::temp_dir().join(format!("kforge-html-report-outside-{}", std::process::id()));
    let results = write_fixture(&dir, &outside);
    let page = dir.join("report.html");
    let screenshot = dir.join("report.png");

    // kforge's own screenshot path: renders report.html, draws it with chromium.
    let output = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["report", "html"])
        .arg(&results)
        .arg("--screenshot")
        .arg(&screenshot)
        .args(["--window-size", "1200x900"])
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "cargo xtask report html failed:\n{stderr}");
    assert_eq!(String::from_utf8_lossy(&output.stdout), format!("{}\n{}\n", page.display(), screenshot.display()));

    // The DOM as Chromium parsed it.
    let dom_path = dir.join("dom.html");
    chromium(&page, &["--dump-dom"], &dom_path, &dir.join("profile"));
    let dom = std::fs::read_to_string(&dom_path).unwrap();
    assert!(dom.contains("<table class=\"matrix\" id=\"matrix\">"), "{dom}");
    assert!(dom.contains("<td class=\"cell pass\" data-status=\"pass\" id=\"cell-7.2-x86_64\">"), "{dom}");
    assert!(dom.contains("<td class=\"cell fail\" data-status=\"fail\" id=\"cell-7.2-arm64\">"), "{dom}");
    assert!(dom.contains("<span class=\"category\">test-fail</span>"), "{dom}");
    assert!(
        dom.contains("<tr class=\"test fail\" data-status=\"fail\"><td class=\"name\">fifo.roundtrip</td>"),
        "{dom}"
    );
    // The guest's `<script>` stayed text: no element, and the title is ours.
    assert!(!dom.contains("<script"), "{dom}");
    assert!(dom.contains("&lt;script&gt;document.title='owned'&lt;/script&gt;"), "{dom}");
    assert!(dom.contains("<title>kforge: 1 of 2 cells passed</title>"), "{dom}");
    // Logs under the report's directory are relative links, others file:// URLs,
    // missing ones (arm64's console log) no link at all.
    assert!(dom.contains("<a href=\"cells/7.2-x86_64/console.log\">console</a>"), "{dom}");
    let outside_log = std::fs::canonicalize(outside.join("kernel-build.log")).unwrap();
    assert!(dom.contains(&format!("<a href=\"file://{}\">build log</a>", outside_log.display())), "{dom}");
    assert!(!dom.contains("cells/7.2-arm64/console.log"), "{dom}");

    // The screenshot: a substantial green block (x86_64) above a red one (arm64).
    let (green, green_row) = pixels_of(&screenshot, PASS);
    let (red, red_row) = pixels_of(&screenshot, FAIL);
    assert!(green >= MIN_CELL_PIXELS, "only {green} pass-green pixels in {}", screenshot.display());
    assert!(red >= MIN_CELL_PIXELS, "only {red} fail-red pixels in {}", screenshot.display());
    assert!(red_row > green_row, "the red cell (row {red_row:.0}) should be below the green one (row {green_row:.0})");

    eprintln!("chromium checked the report in {:.1}s", started.elapsed().as_secs_f64());
    let _ = std::fs::remove_dir_all(dir);
    let _ = std::fs::remove_dir_all(outside);
}
