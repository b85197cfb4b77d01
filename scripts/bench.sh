#!/usr/bin/env bash
# The performance figures the README quotes. Prints, never asserts:
#  1. project-check deciding against a projects file of 10,000 users x 5 projects (median
#     whole-process time, by hyperfine), beside the grep pipeline the public scripts use;
#  2. cost-prolog / cost-epilog against loopback moto + IMDSv2 (cargo bench).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
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
python3 - "$work/pc.json" "$work/grep.json" <<'PY'
import json, sys
pc = json.load(open(sys.argv[1]))["results"][0]["median"] * 1000
gr = json.load(open(sys.argv[2]))["results"][0]["median"] * 1000
print(f"  project-check median   {pc:.2f} ms")
print(f"  grep pipeline median   {gr:.2f} ms   (grep '^user=' FILE | grep -qw PROJECT)")
print(f"  ratio                  {pc / gr:.2f}x of grep")
PY

echo "== node hooks"
cargo bench -j2 -q --bench node_hooks 2>/dev/null

echo "== cost-tags report, 1,000,000 sacct lines"
cargo bench -j2 -q --bench report 2>/dev/null
