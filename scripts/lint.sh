#!/usr/bin/env bash
# The checks every submission passes before its tests: rustfmt, clippy with warnings
# denied on every target (Cargo.toml's [lints] deny printing outside src/cli and src/bin),
# and rustdoc with warnings denied (a broken intra-doc link is a stale comment); each over
# the whole workspace, cost-tags and its test support crate (tests/support). The docs are
# built with the private items: the library's API is small (what the binaries, tests and
# benches import), and the rest, crate-private behind `unreachable_pub`, is what its
# developers read.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo fmt --all -- --check
cargo clippy -j2 --workspace --all-targets -q -- -D warnings
RUSTDOCFLAGS="-D warnings" cargo doc -j2 --workspace --no-deps --document-private-items -q
echo "lint: rustfmt, clippy and rustdoc clean"
