#!/usr/bin/env python3
"""A stand-in for Slurm's `sacct` and `squeue` (chosen by the name it is run as) that
prints, for the fields it is asked for, exactly what Slurm prints: free text raw (a newline
in a comment goes out as a newline), `|` between sacct --parsable2 fields and none after
the last, squeue -o's literal text between its %-codes, `(null)` for an empty squeue field.

Its jobs are the JSON list in `jobs.json` beside it, read at every call, so a test changes
what Slurm says by rewriting that file. Every call appends its arguments (one JSON list per
line) to `NAME.calls`. While a file `NAME.hold` exists, a call that has read its jobs writes
`NAME.held` and waits until `NAME.hold` is gone before printing: the test can change the
cluster between Slurm's answer and the caller's next step, the way a job starting at that
moment would. While `NAME.fail` exists, a call prints its text as Slurm's error and exits 1
(slurmctld down). Anything it does not implement is an error (exit 1), never a guess.
"""
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
NAME = os.path.basename(sys.argv[0])

# sacct --format names and squeue -o codes -> keys of a job in jobs.json.
SACCT = {
    "JobID": "id", "State": "state", "User": "user", "Account": "account",
    "Partition": "partition", "WCKey": "wckey", "Start": "start", "End": "end",
    "NNodes": "nnodes", "NCPUS": "ncpus", "AllocTRES": "tres", "NodeList": "nodelist",
    "Comment": "comment", "TotalCPU": "total_cpu", "ElapsedRaw": "elapsed_raw",
}
# What sacct prints for a job none of whose steps recorded usage (the stand-in's jobs
# have no steps unless a test gives them these keys).
SACCT_UNRECORDED = {"total_cpu": "00:00:00", "elapsed_raw": ""}
SQUEUE = {
    "A": "id", "i": "id", "u": "user", "P": "partition", "a": "account", "w": "wckey",
    "k": "comment", "N": "nodelist", "T": "state",
}


def fail(message):
    sys.stderr.write(f"{NAME}: error: {message}\n")
    sys.exit(1)


def options(argv, with_value):
    """(flags, {option: value}) from argv; `with_value` lists the options taking one."""
    flags, values = set(), {}
    i = 0
    while i < len(argv):
        arg = argv[i]
        if "=" in arg and arg.startswith("--"):
            key, value = arg.split("=", 1)
            values[key] = value
        elif arg in with_value:
            if i + 1 >= len(argv):
                fail(f"option {arg} needs a value")
            values[arg] = argv[i + 1]
            i += 1
        else:
            flags.add(arg)
        i += 1
    return flags, values


def field(job, key):
    value = job.get(key, SACCT_UNRECORDED.get(key))
    if value is None:
        fail(f"the stand-in's job {job.get('id')} has no {key!r}")
    return str(value)


def sacct(argv, jobs):
    flags, values = options(argv, {"-S", "-E", "-o", "--format", "-u", "-A", "-s"})
    fmt = values.get("--format", values.get("-o"))
    if fmt is None:
        fail("the stand-in prints only --format fields")
    if "--parsable2" not in flags and "-P" not in flags:
        fail("the stand-in prints only --parsable2")
    names = fmt.split(",")
    for n in names:
        if n not in SACCT:
            fail(f'Invalid field requested: "{n}"')
    out = []
    if "--noheader" not in flags and "-n" not in flags:
        out.append("|".join(names))
    for job in jobs:
        out.append("|".join(field(job, SACCT[n]) for n in names))
    return out


def squeue_line(fmt, job):
    out, i = [], 0
    while i < len(fmt):
        c = fmt[i]
        if c != "%":
            out.append(c)
            i += 1
            continue
        code = fmt[i + 1: i + 2]
        if code == "%":
            out.append("%")
        elif code in SQUEUE:
            value = field(job, SQUEUE[code])
            out.append(value if value else "(null)")
        else:
            fail(f"the stand-in does not know the format code %{code}")
        i += 2
    return "".join(out)


def squeue(argv, jobs):
    flags, values = options(argv, {"-o", "--format", "-w", "--nodelist", "-t", "--states", "-O"})
    if "-O" in values or "--Format" in values:
        fail("the stand-in implements -o, not -O")
    fmt = values.get("-o", values.get("--format"))
    if fmt is None:
        fail("the stand-in prints only -o formats")
    if "-a" not in flags and "--all" not in flags:
        fail("the stand-in expects -a (all partitions)")
    node = values.get("-w", values.get("--nodelist"))
    states = values.get("-t", values.get("--states"))
    wanted = set(states.upper().split(",")) if states else None
    out = []
    if "-h" not in flags and "--noheader" not in flags:
        fail("the stand-in prints no header: pass -h")
    for job in jobs:
        if node is not None and node not in job.get("nodes", []):
            continue
        if wanted is not None and field(job, "state") not in wanted:
            continue
        out.append(squeue_line(fmt, job))
    return out


def main():
    argv = sys.argv[1:]
    with open(os.path.join(HERE, f"{NAME}.calls"), "a") as calls:
        calls.write(json.dumps(argv) + "\n")
    broken = os.path.join(HERE, f"{NAME}.fail")
    if os.path.exists(broken):
        with open(broken) as f:
            fail(f.read().strip())
    with open(os.path.join(HERE, "jobs.json")) as f:
        jobs = json.load(f)
    hold = os.path.join(HERE, f"{NAME}.hold")
    if os.path.exists(hold):
        open(os.path.join(HERE, f"{NAME}.held"), "w").close()
        deadline = time.monotonic() + 60
        while os.path.exists(hold) and time.monotonic() < deadline:
            time.sleep(0.02)
    if NAME == "sacct":
        lines = sacct(argv, jobs)
    elif NAME == "squeue":
        lines = squeue(argv, jobs)
    else:
        fail("run me as sacct or squeue")
    for line in lines:
        sys.stdout.write(line + "\n")


main()
