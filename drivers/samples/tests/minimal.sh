#!/bin/sh
# minimal: rust_minimal loaded, ran its init (dmesg) and is listed in /proc/modules.
log=$(dmesg)
for line in "rust_minimal: Rust minimal sample (init)" "rust_minimal: Am I built-in? false" \
    "rust_minimal: test_parameter: 1"; do
    printf '%s\n' "$log" | grep -qF "$line" || { echo "missing from dmesg: $line"; exit 1; }
    echo "dmesg has: $line"
done
grep -q '^rust_minimal ' /proc/modules || { echo "rust_minimal is not in /proc/modules"; exit 1; }
echo "rust_minimal is in /proc/modules"
