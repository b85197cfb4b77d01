#!/usr/bin/env bash
# The performance figures the README quotes. Prints, never asserts:
#  1. project-check deciding against a projects file of 10,000 users x 5 projects (median
#     whole-process time, by hyperfine), beside the grep pipeline the public scripts use,
#     and again with budgets on (a warm cache of 2,000 budgets), and a submission with
#     committed budgets and a reservation journal of 1,000 lines against budgets off;
#  2. sbatch latency through a real slurmctld, with and without the submit filter (cargo
#     bench; two throwaway local Slurm clusters, so run as root);
#  3. cost-prolog / cost-epilog against loopback moto + IMDSv2 (cargo bench);
#  4. cost-tags report over 1,000,000 generated sacct lines (cargo bench), with prices
#     from the settings and from a price cache;
#  5. cost-tags prices refresh for 20 instance types against loopback stand-ins;
#  6. EC2 tagging at 200 and 1,000 nodes and a 1,000-task array, node mode (every
#     cost-prolog at once) and controller mode (reconcile --cluster at 5 and 9 calls a
#     second), behind a front throttling like EC2 (cargo bench; about 15 minutes; the
#     method is in docs/performance-tagging.md).
#
# `bash scripts/bench.sh --project-check` runs part 1 alone (a minute or two);
# `bash scripts/bench.sh --tagging` runs part 6 alone.
set -euo pipefail
only_project_check=false
only_tagging=false
case "${1:-}" in
    --project-check) only_project_check=true ;;
    --tagging) only_tagging=true ;;
    "") ;;
    *) echo "usage: bash scripts/bench.sh [--project-check | --tagging]" >&2; exit 2 ;;
esac
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
# Rust, when install-deps installed it, is in ~/.cargo/bin (it edits no shell profile).
command -v cargo >/dev/null 2>&1 || export PATH="$HOME/.cargo/bin:$PATH"
export PATH="$PWD/.venv/bin:$PATH"

tagging() {
    echo "== EC2 tagging at scale, node mode and controller mode, EC2's throttling"
    # Its progress goes to stderr, and so would a failure: both are shown.
    cargo bench -j2 -q --bench tagging_scale
}
if $only_tagging; then
    tagging
    exit 0
fi
cargo build -j2 --release --bins -q

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 - "$work/projects_list.conf" <<'PY'
import sys
with open(sys.argv[1], "w") as f:
    f.write("# 10,000 users x 5 projects\n")
    for u in range(10000):
        f.write("user%05d=%s\n" % (u, ", ".join("Project%04d" % ((u * 7 + k) % 2000) for k in range(5))))
PY
printf 'projects_file = "%s"\n' "$work/projects_list.conf" > "$work/cost-tags.toml"
bin=$PWD/target/release/project-check
user=user09999 project=$(grep '^user09999' "$work/projects_list.conf" | sed 's/.*, //')
"$bin" --config "$work/cost-tags.toml" "$user" "$project"   # must be allowed

echo "== project-check vs grep, $(wc -l < "$work/projects_list.conf") lines, $(du -k "$work/projects_list.conf" | cut -f1) KiB (last user in the file)"
hyperfine -N --warmup 20 --runs 300 --export-json "$work/pc.json" \
    "$bin --config $work/cost-tags.toml $user $project" >/dev/null
hyperfine --warmup 20 --runs 300 --export-json "$work/grep.json" \
    "grep '^$user=' $work/projects_list.conf | grep -qw '$project'" >/dev/null
# The same check with budgets on and a warm cache of 2,000 budgets (one per project), as
# `cost-tags budget refresh` writes it.
python3 - "$work/budgets.jsonl" <<'PY'
import json, sys, time
with open(sys.argv[1], "w") as f:
    f.write(json.dumps({"format": 1, "refreshed_at": int(time.time()), "account_id": "123456789012"}) + "\n")
    for p in range(2000):
        f.write(json.dumps({"name": "Project%04d" % p, "limit": 1000.0, "actual": 10.0 * (p % 90),
                            "unit": "USD", "period": "MONTHLY"}, separators=(",", ":")) + "\n")
PY
printf 'projects_file = "%s"\n[budget]\nenabled = true\ncache_file = "%s"\n' \
    "$work/projects_list.conf" "$work/budgets.jsonl" > "$work/budget.toml"
"$bin" --config "$work/budget.toml" "$user" "$project"   # must be allowed (within budget)
hyperfine -N --warmup 20 --runs 300 --export-json "$work/pcb.json" \
    "$bin --config $work/budget.toml $user $project" >/dev/null
# Committed budgets (issue 14): the submission as job_submit.lua passes it, with its size,
# against the same file with budgets off, and with a cache that records accrued and
# committed spend and the partitions' prices (enforce = committed).
python3 - "$work/budgets.jsonl" "$work/committed.jsonl" <<'PY'
import json, sys
lines = open(sys.argv[1]).read().splitlines()
header = json.loads(lines[0])
header["partitions"] = {"compute": {"instance": "c5.xlarge", "hourly": 0.17, "cpus": 4, "default_minutes": 60,
                                    "max_minutes": 1440, "is_default": True}}
with open(sys.argv[2], "w") as f:
    f.write(json.dumps(header, separators=(",", ":")) + "\n")
    for line in lines[1:]:
        b = json.loads(line)
        b.update({"accrued": 3.0, "committed": 2.0, "running_jobs": 1})
        f.write(json.dumps(b, separators=(",", ":")) + "\n")
PY
printf 'projects_file = "%s"\n' "$work/projects_list.conf" > "$work/submit-off.toml"
# (Its own reservation journal, empty at first: committed budgets reserve what they accept.)
printf 'projects_file = "%s"\n[budget]\nenabled = true\nenforce = "committed"\ncache_file = "%s"\nreservations_file = "%s"\n' \
    "$work/projects_list.conf" "$work/committed.jsonl" "$work/committed-reservations.jsonl" > "$work/committed.toml"
submit="--submit --uid 4000000 --user $user --comment $project --time-limit 120 --min-nodes 2 --max-nodes 4294967294 --num-tasks 8 --cpus-per-task 65534 --min-cpus 8 --shared 65534 --partition compute"
"$bin" --config "$work/committed.toml" $submit   # must be allowed, with the acceptance line
hyperfine -N --warmup 20 --runs 300 --export-json "$work/off.json" "$bin --config $work/submit-off.toml $submit" >/dev/null
hyperfine -N --warmup 20 --runs 300 --export-json "$work/com.json" "$bin --config $work/committed.toml $submit" >/dev/null
# Reservations (issue 21.4): the same submission with a journal of 1,000 reservations made
# since the refresh, spread over the projects, which project-check streams, sums for its
# project, and appends to under its lock. Each run starts from the same 1,000 lines.
python3 - "$work/reservations.orig" "$(sed -n 's/.*"refreshed_at":\([0-9]*\).*/\1/p;q' "$work/committed.jsonl")" <<'PY'
import json, sys
at = int(sys.argv[2])
with open(sys.argv[1], "w") as f:
    for i in range(1000):
        f.write(json.dumps({"at": at + i % 60, "budget": "Project%04d" % (i * 37 % 2000), "cost": 0.01 * (i % 7)},
                           separators=(",", ":")) + "\n")
PY
printf 'projects_file = "%s"\n[budget]\nenabled = true\nenforce = "committed"\ncache_file = "%s"\nreservations_file = "%s"\n' \
    "$work/projects_list.conf" "$work/committed.jsonl" "$work/reservations.jsonl" > "$work/reserved.toml"
cp "$work/reservations.orig" "$work/reservations.jsonl" && chmod 600 "$work/reservations.jsonl"
"$bin" --config "$work/reserved.toml" $submit   # must be allowed, and reserve
[ "$(wc -l < "$work/reservations.jsonl")" = 1001 ]
hyperfine -N --warmup 20 --runs 300 --export-json "$work/res.json" \
    --prepare "cp $work/reservations.orig $work/reservations.jsonl" \
    "$bin --config $work/reserved.toml $submit" >/dev/null
# The same copy before budgets off, so both sides pay for the page cache alike.
hyperfine -N --warmup 20 --runs 300 --export-json "$work/off2.json" \
    --prepare "cp $work/reservations.orig $work/reservations.jsonl" \
    "$bin --config $work/submit-off.toml $submit" >/dev/null
python3 - "$work/pc.json" "$work/grep.json" "$work/pcb.json" "$(du -k "$work/budgets.jsonl" | cut -f1)" \
    "$work/off.json" "$work/com.json" "$work/off2.json" "$work/res.json" <<'PY'
import json, sys
med = lambda f: json.load(open(f))["results"][0]["median"] * 1000
pc, gr, pcb = med(sys.argv[1]), med(sys.argv[2]), med(sys.argv[3])
off, com = med(sys.argv[5]), med(sys.argv[6])
off2, res = med(sys.argv[7]), med(sys.argv[8])
print(f"  project-check median   {pc:.2f} ms")
print(f"  grep pipeline median   {gr:.2f} ms   (grep '^user=' FILE | grep -qw PROJECT)")
print(f"  ratio                  {pc / gr:.2f}x of grep")
print(f"  with budgets on        {pcb:.2f} ms   (warm cache of 2,000 budgets, {sys.argv[4]} KiB): {100 * (pcb / pc - 1):+.1f}%")
print(f"  submission, budgets off           {off:.2f} ms   (--submit with the job's size)")
print(f"  submission, committed budgets     {com:.2f} ms   (worst case priced): {100 * (com / off - 1):+.1f}% (target within 10%)")
print(f"  submission, budgets off           {off2:.2f} ms   (with the journal copied before each run, as below)")
print(f"  submission, 1,000 reservations    {res:.2f} ms   (committed, journal summed and appended): {100 * (res / off2 - 1):+.1f}% (target within 10%)")
PY
$only_project_check && exit 0

echo "== submission latency"
cargo bench -j2 -q --bench submit_latency 2>/dev/null

echo "== node hooks"
cargo bench -j2 -q --bench node_hooks 2>/dev/null

echo "== cost-tags report, 1,000,000 sacct lines"
cargo bench -j2 -q --bench report 2>/dev/null

echo "== cost-tags prices refresh, 20 instance types"
cargo bench -j2 -q --bench prices_refresh 2>/dev/null

tagging
