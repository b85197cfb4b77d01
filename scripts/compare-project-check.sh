#!/usr/bin/env bash
# Compares two project-check binaries (say a release build before a change and one after)
# on the workloads of `scripts/bench.sh --project-check`: a projects file of 10,000 users x
# 5 projects (the last user checked), the same with budgets on (a warm cache of 2,000
# budgets), and a submission as job_submit.lua passes it (--submit with the job's size).
# Runs alternate between the two binaries (ABBA...), so both see the same machine load: on a
# shared machine, two hyperfine runs one after the other mostly measure the load's drift.
# Prints each binary's median whole-process time; asserts nothing.
#
# Usage: scripts/compare-project-check.sh BEFORE AFTER [RUNS]   (RUNS per binary, default 500)
set -euo pipefail
[ $# -ge 2 ] || { sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
before=$(realpath "$1") after=$(realpath "$2") runs=${3:-500}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 - "$work" "$before" "$after" "$runs" <<'PY'
import json, statistics, subprocess, sys, time
work, before, after, runs = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
with open(f"{work}/projects_list.conf", "w") as f:
    f.write("# 10,000 users x 5 projects\n")
    for u in range(10000):
        f.write("user%05d=%s\n" % (u, ", ".join("Project%04d" % ((u * 7 + k) % 2000) for k in range(5))))
with open(f"{work}/budgets.jsonl", "w") as f:
    f.write(json.dumps({"format": 1, "refreshed_at": int(time.time()), "account_id": "123456789012"}) + "\n")
    for p in range(2000):
        f.write(json.dumps({"name": "Project%04d" % p, "limit": 1000.0, "actual": 10.0 * (p % 90),
                            "unit": "USD", "period": "MONTHLY"}, separators=(",", ":")) + "\n")
with open(f"{work}/cost-tags.toml", "w") as f:
    f.write(f'projects_file = "{work}/projects_list.conf"\n')
with open(f"{work}/budget.toml", "w") as f:
    f.write(f'projects_file = "{work}/projects_list.conf"\n[budget]\nenabled = true\n'
            f'cache_file = "{work}/budgets.jsonl"\n')
user = "user09999"
project = "Project%04d" % ((9999 * 7 + 4) % 2000)
submit = ["--submit", "--uid", "4000000", "--user", user, "--comment", project, "--time-limit", "120",
          "--min-nodes", "2", "--max-nodes", "4294967294", "--num-tasks", "8", "--cpus-per-task", "65534",
          "--min-cpus", "8", "--shared", "65534", "--partition", "compute"]
cases = {
    "by hand": ["--config", f"{work}/cost-tags.toml", user, project],
    "budgets on": ["--config", f"{work}/budget.toml", user, project],
    "--submit": ["--config", f"{work}/cost-tags.toml"] + submit,
}

def once(binary, args):
    start = time.perf_counter()
    done = subprocess.run([binary] + args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    took = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"{binary} {' '.join(args)}: exit {done.returncode}: {done.stderr.decode()}")
    return took

for name, args in cases.items():
    for _ in range(20):
        once(before, args), once(after, args)
    times = {before: [], after: []}
    for i in range(runs):
        for binary in (before, after) if i % 2 == 0 else (after, before):
            times[binary].append(once(binary, args))
    b, a = (statistics.median(times[x]) * 1000 for x in (before, after))
    print(f"{name:11s} before {b:.2f} ms   after {a:.2f} ms   ({100 * (a / b - 1):+.1f}%)")
PY
