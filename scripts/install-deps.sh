#!/usr/bin/env bash
# Installs what the tests, the demo and the benchmark need on a Debian/Ubuntu machine, as
# root: a real Slurm (slurmctld, slurmd, slurmdbd with MariaDB, munge, the Lua job_submit
# plugin), and in a project-local Python virtual environment (.venv/, made with Debian's
# python3-venv: a stock Debian 12 refuses `pip install` into the system Python) a real
# local AWS endpoint (moto server), the AWS CLI, prometheus-client and the IAM policy
# linter parliament; ParallelCluster in a virtual environment of its own. Prints one line
# per step; what is already there is skipped, so a second run takes about a second.
# When there is no cargo (a stock Debian has no Rust, and Debian 12's rustc 1.63 is too old
# for the crate), Rust too, with rustup's own installer.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
steps=6
step() { echo "install-deps: [$1/$steps] $2"; }

# Runs a noisy command with its output in a log; shows the log's end if it fails.
quiet() {
    local log
    log=$(mktemp /tmp/install-deps.XXXXXX)
    if "$@" >"$log" 2>&1; then
        rm -f "$log"
    else
        local rc=$?
        echo "install-deps: failed ($rc): $*" >&2
        tail -n 30 "$log" >&2
        echo "install-deps: full output in $log" >&2
        return "$rc"
    fi
}

# 1-2. Debian packages, only those the build and the tests use, without recommends.
py=/usr/bin/python3
need_apt=()
for pair in slurmctld:slurmctld slurmd:slurmd sbatch:slurm-client munged:munge \
            slurmdbd:slurmdbd mariadbd:mariadb-server setpriv:util-linux unshare:util-linux \
            mount:mount curl:curl shellcheck:shellcheck hyperfine:hyperfine chromium:chromium; do
    cmd=${pair%%:*}; pkg=${pair#*:}
    command -v "$cmd" >/dev/null 2>&1 || [ -x "/usr/sbin/$cmd" ] || need_apt+=("$pkg")
done
ls /usr/lib/*/slurm-wlm/job_submit_lua.so >/dev/null 2>&1 || need_apt+=(slurm-wlm-basic-plugins)
# Rust links with the system C compiler, and the aws-lc crypto library is C: rustup does
# not install them. curl fetches rustup when Rust is missing.
command -v cc >/dev/null 2>&1 || need_apt+=(gcc)
[ -e /usr/include/stdio.h ] || need_apt+=(libc6-dev)
# cargo and curl need the CA certificates to fetch crates over https.
[ -s /etc/ssl/certs/ca-certificates.crt ] || need_apt+=(ca-certificates)
{ [ -x "$py" ] && "$py" -c 'import ensurepip, venv' 2>/dev/null; } || need_apt+=(python3-venv)
if [ ${#need_apt[@]} -gt 0 ]; then
    mapfile -t need_apt < <(printf '%s\n' "${need_apt[@]}" | sort -u)
    export DEBIAN_FRONTEND=noninteractive
    step 1 "apt-get update"
    quiet apt-get update
    step 2 "apt-get install --no-install-recommends ${need_apt[*]} (a few minutes on a fresh machine)"
    quiet apt-get install -y --no-install-recommends "${need_apt[@]}"
else
    step 1 "apt-get update: not needed"
    step 2 "Debian packages (gcc, slurm, munge, mariadb, python3-venv, ...): already there"
fi

# 3. Rust: cargo at or above the crate's rust-version. Without one, rustup's installer
# puts the stable toolchain (minimal profile) in ~/.cargo and ~/.rustup, as rustup's
# documented install does: rustup-init is fetched over https from static.rust-lang.org and
# run only if it matches the SHA-256 published beside it. It edits no shell profile;
# demo.sh, test.sh and bench.sh add ~/.cargo/bin to PATH when cargo is not on it.
command -v cargo >/dev/null 2>&1 || export PATH="$HOME/.cargo/bin:$PATH"
need=$(sed -n 's/^rust-version *= *"\([0-9.]*\)".*/\1/p' "$repo/Cargo.toml")
if ! command -v cargo >/dev/null 2>&1; then
    step 3 "Rust: rustup-init --profile minimal --default-toolchain stable into $HOME/.cargo (a minute or two)"
    url="https://static.rust-lang.org/rustup/dist/$(uname -m)-unknown-linux-gnu/rustup-init"
    tmp=$(mktemp -d /tmp/install-deps-rustup.XXXXXX)
    quiet curl --proto '=https' --tlsv1.2 -sSf -o "$tmp/rustup-init" "$url"
    quiet curl --proto '=https' --tlsv1.2 -sSf -o "$tmp/rustup-init.sha256" "$url.sha256"
    if ! (cd "$tmp" && echo "$(cut -d' ' -f1 rustup-init.sha256)  rustup-init" | sha256sum -c --quiet -); then
        echo "install-deps: $url does not match its published SHA-256; not run" >&2
        exit 1
    fi
    chmod 0755 "$tmp/rustup-init"
    quiet "$tmp/rustup-init" -y --no-modify-path --profile minimal --default-toolchain stable
    rm -rf "$tmp"
fi
have=$(cargo --version | awk '{print $2}')
if [ "$(printf '%s\n%s\n' "$need" "${have%%-*}" | sort -V | head -n 1)" != "$need" ]; then
    echo "install-deps: cargo $have is older than $need (rust-version in Cargo.toml); update it: rustup update stable" >&2
    exit 1
fi
step 3 "cargo $have (>= $need)"

# 4-5. moto, the AWS CLI, prometheus-client and parliament in .venv/ at the top of the
# repository: git-ignored, and outside target/ so that `cargo clean` keeps it. The tests
# and scripts look there first (tests/support/src/lib.rs `tool`, and
# scripts/test.sh, demo.sh and bench.sh put .venv/bin first on PATH).
venv="$repo/.venv"
if [ -x "$venv/bin/python3" ] && "$venv/bin/python3" -c 'import pip' 2>/dev/null; then
    step 4 "virtual environment $venv: already there"
else
    step 4 "python3 -m venv $venv"
    rm -rf "$venv"
    quiet "$py" -m venv "$venv"
fi
if [ -x "$venv/bin/moto_server" ] && [ -x "$venv/bin/aws" ] && [ -x "$venv/bin/parliament" ] \
    && "$venv/bin/python3" -c 'import moto, flask, prometheus_client' 2>/dev/null; then
    step 5 "moto[server], awscli, prometheus-client, parliament in .venv: already there"
else
    step 5 "pip install moto[server] awscli prometheus-client parliament into .venv (about a minute)"
    quiet "$venv/bin/python3" -m pip install --disable-pip-version-check \
        "moto[server]>=5" awscli "prometheus-client>=0.17" "parliament>=1.6"
fi

# 6. tests/integration/iam_policies.rs loads the example cluster configuration with
# ParallelCluster's own schema. It pins dozens of packages (attrs, aws-cdk 1.x, ...): a
# virtual environment of its own keeps them from changing the ones moto runs with.
pcluster_venv="$repo/target/venv-pcluster"
if "$pcluster_venv/bin/python3" -c 'import pcluster.schemas.cluster_schema' 2>/dev/null; then
    step 6 "aws-parallelcluster in $pcluster_venv: already there"
else
    step 6 "pip install aws-parallelcluster into $pcluster_venv (a few minutes)"
    quiet "$py" -m venv "$pcluster_venv"
    quiet "$pcluster_venv/bin/python3" -m pip install --disable-pip-version-check "aws-parallelcluster>=3.6,<4"
fi
