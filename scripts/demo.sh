#!/usr/bin/env bash
# Quick start: cost-tags end to end on a throwaway local setup, narrated. Starts a private
# Slurm cluster (munged, slurmctld, slurmd on free loopback ports) with the project's
# job_submit.lua and prolog/epilog hooks, a moto server standing in for EC2, and an IMDSv2
# emulator; shows jobs refused and accepted, the node's instance tags following them,
# budgets, reports from Slurm accounting (slurmdbd), and controller mode.
# Installs what it needs first. Run as root. Everything it starts, it stops.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
# Rust, when install-deps installed it, is in ~/.cargo/bin (it edits no shell profile).
command -v cargo >/dev/null 2>&1 || export PATH="$HOME/.cargo/bin:$PATH"
# moto_server and the AWS CLI live in the project's virtual environment.
export PATH="$PWD/.venv/bin:$PATH"
# One build: the binaries and the demo (examples/demo.rs, which reuses the test fixtures).
echo "demo: cargo build --bins --example demo"
cargo build -j2 -q --bins --example demo
exec "${CARGO_TARGET_DIR:-target}/debug/examples/demo"
