#!/usr/bin/env bash
# Installs what the tests, the demo and the benchmark need on a Debian/Ubuntu machine:
# a real Slurm (slurm-wlm + munge + the Lua job_submit plugin), a real local AWS endpoint
# (moto server), hyperfine for the benchmark, and the IAM policy and cluster configuration
# checkers (parliament, ParallelCluster). Already-installed parts are skipped.
set -euo pipefail

need_apt=()
for pair in slurmctld:slurmctld slurmd:slurmd sbatch:slurm-client munged:munge \
            setpriv:util-linux hyperfine:hyperfine shellcheck:shellcheck slurmdbd:slurmdbd mariadbd:mariadb-server; do
    cmd=${pair%%:*}; pkg=${pair#*:}
    command -v "$cmd" >/dev/null 2>&1 || [ -x "/usr/sbin/$cmd" ] || need_apt+=("$pkg")
done
ls /usr/lib/*/slurm-wlm/job_submit_lua.so >/dev/null 2>&1 || need_apt+=(slurm-wlm-basic-plugins)
if [ ${#need_apt[@]} -gt 0 ]; then
    echo "install-deps: apt-get install ${need_apt[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q "${need_apt[@]}" >/dev/null 2>&1 || {
        apt-get update -q >/dev/null
        apt-get install -y -q "${need_apt[@]}"
    }
fi
if ! command -v moto_server >/dev/null 2>&1 || ! python3 -c 'import moto, flask' 2>/dev/null; then
    echo "install-deps: pip install moto[server]"
    python3 -m pip install -q "moto[server]>=5"
fi
# `cost-tags metrics` is checked by prometheus-client's OpenMetrics parser
# (tests/integration/metrics.rs).
if ! python3 -c 'import prometheus_client' 2>/dev/null; then
    echo "install-deps: pip install prometheus-client"
    python3 -m pip install -q "prometheus-client>=0.17"
fi
# The managed script's s3:// path is tested with the real AWS CLI against moto, and the
# benchmark compares one `aws ec2 create-tags` with cost-prolog.
if ! command -v aws >/dev/null 2>&1; then
    echo "install-deps: pip install awscli"
    python3 -m pip install -q awscli
fi
# tests/integration/iam_policies.rs lints the IAM policies with parliament...
if ! command -v parliament >/dev/null 2>&1; then
    echo "install-deps: pip install parliament"
    python3 -m pip install -q "parliament>=1.6"
fi
# ...and loads the example cluster configuration with ParallelCluster's own schema. It pins
# dozens of packages (attrs, aws-cdk 1.x, ...): a virtual environment of its own keeps
# them from changing the ones moto runs with.
pcluster_venv="$(cd "$(dirname "$0")/.." && pwd)/target/venv-pcluster"
if ! "$pcluster_venv/bin/python3" -c 'import pcluster.schemas.cluster_schema' 2>/dev/null; then
    echo "install-deps: pip install aws-parallelcluster into $pcluster_venv"
    python3 -m venv "$pcluster_venv"
    "$pcluster_venv/bin/python3" -m pip install -q "aws-parallelcluster>=3.6,<4"
fi
