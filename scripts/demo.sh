#!/usr/bin/env bash
# Quick start: cost-tags end to end on a throwaway local setup, narrated. Starts a private
# Slurm cluster (munged, slurmctld, slurmd on free loopback ports) with the project's
# job_submit.lua and prolog/epilog hooks, a moto server standing in for EC2, and an IMDSv2
# emulator; shows jobs refused and accepted and the node's instance tags following them.
# Installs what it needs first. Run as root. Everything it starts, it stops.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cargo build -j2 -q --bins
cargo test -j2 -q --test integration demo:: -- --ignored --nocapture 2>&1 | grep -v '^running 1 test$\|^test result\|^$\|^test demo::'
