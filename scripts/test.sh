#!/usr/bin/env bash
# The whole test suite, on a fresh machine: installs Slurm, munge and moto, then runs
# unit tests and the integration tests against a throwaway local Slurm cluster, a local
# moto server and the IMDSv2 emulator. Run as root (the Slurm fixture starts daemons and
# creates the test users ctalice, ctbob, ctcarol).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
# Rust, when install-deps installed it, is in ~/.cargo/bin (it edits no shell profile).
command -v cargo >/dev/null 2>&1 || export PATH="$HOME/.cargo/bin:$PATH"
# moto_server, the AWS CLI, parliament and prometheus-client live in the project's virtual
# environment (the tests look there too; scripts the tests run find `aws` through PATH).
export PATH="$PWD/.venv/bin:$PATH"
cargo test -j2 "$@"
