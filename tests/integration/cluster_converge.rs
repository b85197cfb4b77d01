//! The head node's convergence (`cost-tags reconcile --cluster`) at scale, against moto
//! behind a front that throttles CreateTags and DeleteTags exactly as EC2 documents (a
//! bucket of 100 per action, refilled 10 a second): from any start (untagged instances,
//! wrong values, extra managed keys, tags of ended jobs, shared nodes) every instance
//! ends with Slurm's tags and the front throttled nothing; a second pass makes no tag
//! call; with the account's bucket emptied by someone else, throttled calls are sent
//! again later and nothing is lost. Speed is measured in benches/tagging_scale.rs.

use crate::support;

use std::collections::BTreeMap;

use support::sim_cluster::{SimCluster, JOBID, PROJECT, USER};

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn tags(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

#[test]
fn two_hundred_instances_converge_from_any_start_without_a_throttled_answer() {
    let Some(c) = SimCluster::start(&crate::bins(), 200, "") else {
        return;
    };
    // Nodes 0..160: 40 jobs of 4 nodes, 10 projects, 20 users. Nodes 160..170 are
    // shared by jobs 500 and 501. Nodes 170..200 are idle.
    let mut jobs = Vec::new();
    let mut want: Vec<BTreeMap<String, String>> = vec![BTreeMap::new(); 200];
    for j in 0..40usize {
        let (id, user, project) = (100 + j as u32, format!("user{}", j % 20), format!("Project{}", j % 10));
        let nodes: Vec<usize> = (4 * j..4 * j + 4).collect();
        jobs.push(c.job(id, &user, &project, &nodes));
        for &k in &nodes {
            want[k] = tags(&[(PROJECT, &project), (USER, &user), (JOBID, &id.to_string())]);
        }
    }
    let shared: Vec<usize> = (160..170).collect();
    jobs.push(c.job(500, "zed", "ProjectZ", &shared));
    jobs.push(c.job(501, "amy", "ProjectA", &shared));
    for &k in &shared {
        want[k] = tags(&[(PROJECT, "ProjectA ProjectZ"), (USER, "amy zed"), (JOBID, "500 501")]);
    }
    c.slurm.set_jobs(&jobs);
    // Nodes 0..40 stay untagged. Wrong values on 40..80 (and on a shared node); right
    // ones already on 100..120; an extra managed key on idle 170..185; an ended job's
    // tags on idle 185..200.
    c.tag(
        &(40..80).collect::<Vec<_>>(),
        &[(PROJECT, "Wrong"), (USER, "eve"), (JOBID, "1")],
    );
    c.tag(&[160], &[(PROJECT, "ProjectZ"), (USER, "zed"), (JOBID, "500")]);
    for (k, right) in want.iter().enumerate().take(120).skip(100) {
        let w: Vec<(&str, &str)> = right.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        c.tag(&[k], &w);
    }
    c.tag(&(170..185).collect::<Vec<_>>(), &[(JOBID, "77")]);
    c.tag(
        &(185..200).collect::<Vec<_>>(),
        &[(PROJECT, "ProjectB"), (USER, "bob"), (JOBID, "78")],
    );

    c.proxy.reset_counts();
    let out = c.reconcile_command(&[]).output().unwrap();
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    let got = c.cost_tags();
    for (k, id) in c.instances.iter().enumerate() {
        assert_eq!(got[id], want[k], "node {k} ({id})");
    }
    assert_eq!(c.proxy.throttled(), 0, "{:?}", c.proxy.counts());
    // Projects and users one call per value; job ids one call per job (instances of a
    // job share it); the two idle groups one DeleteTags each.
    let creates = c.proxy.count("CreateTags");
    assert!(creates <= 11 + 22 + 41, "{creates} CreateTags: {:?}", c.proxy.counts());
    assert_eq!(c.proxy.count("DeleteTags"), 2, "{:?}", c.proxy.counts());
    assert!(
        stdout.contains("200 running instances, 20 compute instances in sync, 180 changed"),
        "{stdout}"
    );
    assert!(c.moto.tags(&c.instances[0])["team"] == "hpc", "other tags stay");

    // A second pass: nothing to change, no tag call, one DescribeInstances page.
    c.proxy.reset_counts();
    let out = c.reconcile_command(&[]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(c.proxy.counts(), [("DescribeInstances".to_string(), 1)].into());
}

#[test]
fn with_the_accounts_bucket_emptied_throttled_calls_go_again_and_nothing_is_lost() {
    let Some(c) = SimCluster::start(&crate::bins(), 20, "") else {
        return;
    };
    let jobs = c.one_job_per_node(3, 4);
    c.slurm.set_jobs(&jobs);
    // Other tools of the account keep the CreateTags bucket empty for 10 s.
    c.proxy.spend_bucket("CreateTags", 10.0);
    c.proxy.reset_counts();
    let out = c.reconcile_command(&["--rate", "20"]).output().unwrap();
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(
        c.proxy.throttled() > 0,
        "the bucket was not empty: {:?}",
        c.proxy.counts()
    );
    assert!(stdout.contains("throttled, will retry"), "{stdout}");
    let got = c.cost_tags();
    for (k, id) in c.instances.iter().enumerate() {
        let want = tags(&[
            (PROJECT, &format!("Project{}", k % 3)),
            (USER, &format!("user{}", k % 4)),
            (JOBID, &(1000 + k).to_string()),
        ]);
        assert_eq!(got[id], want, "node {k}");
    }
}

#[test]
fn status_cluster_lists_the_instances_out_of_sync_with_statuss_exit_codes() {
    let Some(c) = SimCluster::start(&crate::bins(), 4, "") else {
        return;
    };
    c.slurm.set_jobs(&[c.job(1, "ann", "P1", &[0])]);
    // Node 0 misses its job's tags, node 3 carries an ended job's; 1 and 2 are right.
    c.tag(&[3], &[(JOBID, "9")]);
    c.proxy.reset_counts();
    let out = c.status_command(&[]).output().unwrap();
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.contains("2 compute instances in sync, 2 out of sync"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&c.instances[0]) && stdout.contains(&c.instances[3]),
        "{stdout}"
    );
    assert!(!stdout.contains(&c.instances[1]), "{stdout}");
    assert!(
        stdout.contains("aws-parallelcluster-jobid: \"9\" -> (none)"),
        "{stdout}"
    );
    assert!(stdout.contains("OUT OF SYNC"), "{stdout}");
    // It only looks.
    assert_eq!(c.proxy.count("CreateTags") + c.proxy.count("DeleteTags"), 0);

    let out = c.status_command(&["--json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let ids: Vec<&str> = json["out_of_sync"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["instance_id"].as_str().unwrap())
        .collect();
    let mut want = vec![c.instances[0].as_str(), c.instances[3].as_str()];
    want.sort();
    let mut ids = ids;
    ids.sort();
    assert_eq!(ids, want);

    let out = c.reconcile_command(&[]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let out = c.status_command(&[]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    assert!(text(&out.stdout).ends_with("\nin sync\n"));

    // Slurm unreadable: it cannot tell.
    c.slurm.fail(
        "squeue",
        Some("slurm_load_jobs error: Unable to contact slurm controller"),
    );
    let out = c.status_command(&[]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stdout));
}

/// Kills the `--follow` child if the test ends early (by its pid, as it is ours).
struct Follower(std::process::Child);

impl Drop for Follower {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits (up to a minute, polling) until `done`, else fails showing the service's output.
fn wait_until(what: &str, log: &std::path::Path, mut done: impl FnMut() -> bool) {
    for _ in 0..300 {
        if done() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    panic!(
        "{what}: not after a minute\n{}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
}

#[test]
fn follow_converges_when_woken_by_the_slurmctld_hook_and_ends_on_sigterm() {
    // Polling once an hour: only the wake-up can explain a second pass.
    let Some(c) = SimCluster::start(&crate::bins(), 4, "[tagging]\npoll_seconds = 3600\n") else {
        return;
    };
    c.slurm.set_jobs(&[c.job(1, "ann", "P1", &[0, 1])]);
    let log = c.dir.path().join("follow.log");
    let out = std::fs::File::create(&log).unwrap();
    let child = c
        .reconcile_command(&["--follow"])
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap();
    let mut follower = Follower(child);
    let job1 = tags(&[(PROJECT, "P1"), (USER, "ann"), (JOBID, "1")]);
    let none = BTreeMap::new();
    let tagged = |want: [&BTreeMap<String, String>; 4]| {
        let got = c.cost_tags();
        c.instances.iter().zip(want).all(|(id, w)| &got[id] == w)
    };
    wait_until("the first pass", &log, || tagged([&job1, &job1, &none, &none]));
    wait_until("the first pass's end", &log, || {
        std::fs::read_to_string(&log)
            .unwrap()
            .contains("compute instances in sync")
    });
    // Each pass of the service records the instance timeline, as a single pass does.
    assert!(
        std::fs::read_to_string(&log)
            .unwrap()
            .contains("; timeline: 4 intervals (4 opened, 0 extended)"),
        "{}",
        std::fs::read_to_string(&log).unwrap()
    );
    assert!(c.dir.path().join("state/timeline.jsonl").is_file());

    // Job 1 ends, job 2 starts; EpilogSlurmctld/PrologSlurmctld run the hook.
    c.slurm.set_jobs(&[c.job(2, "bob", "P2", &[2])]);
    let hook = c.dir.path().join("cost-tags-wake");
    let text_of_hook =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/slurm/cost-tags-wake")).unwrap();
    assert!(text_of_hook.contains("/run/cost-tags/wake"));
    std::fs::write(
        &hook,
        text_of_hook.replace("/run/cost-tags/wake", c.wake_file().to_str().unwrap()),
    )
    .unwrap();
    let status = std::process::Command::new("sh").arg(&hook).status().unwrap();
    assert_eq!(status.code(), Some(0));
    let job2 = tags(&[(PROJECT, "P2"), (USER, "bob"), (JOBID, "2")]);
    wait_until("the woken pass", &log, || tagged([&none, &none, &job2, &none]));
    assert!(std::fs::read_to_string(&log).unwrap().contains("woken: next pass"));

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(follower.0.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let mut code = None;
    wait_until("the end after SIGTERM", &log, || {
        code = follower.0.try_wait().unwrap().map(|s| s.code());
        code.is_some()
    });
    let output = std::fs::read_to_string(&log).unwrap();
    assert_eq!(code, Some(Some(0)), "{output}");
    assert!(output.trim_end().ends_with("stopped"), "{output}");
}

#[test]
fn the_wake_hook_exits_0_whatever_happens() {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/slurm/cost-tags-wake");
    let dir = tempfile::tempdir().unwrap();
    let text_of_hook = std::fs::read_to_string(script).unwrap();
    // No service (no file, no directory), and a directory it may not write.
    for wake in [dir.path().join("none/wake"), std::path::PathBuf::from("/proc/1/wake")] {
        let hook = dir.path().join("hook");
        std::fs::write(
            &hook,
            text_of_hook.replace("/run/cost-tags/wake", wake.to_str().unwrap()),
        )
        .unwrap();
        let out = std::process::Command::new("sh").arg(&hook).output().unwrap();
        assert_eq!(out.status.code(), Some(0));
        assert!(out.stdout.is_empty() && out.stderr.is_empty());
        assert!(!wake.exists(), "never created");
    }
}

#[test]
fn a_pass_never_overlaps_another() {
    let Some(c) = SimCluster::start(&crate::bins(), 2, "") else {
        return;
    };
    c.slurm.set_jobs(&[c.job(1, "ann", "P1", &[0])]);
    let run = c.dir.path().join("run");
    std::fs::create_dir_all(&run).unwrap();
    let file = std::fs::File::create(run.join("converge.lock")).unwrap();
    // Another pass (the service, cron, an administrator) holds the lock.
    let held = nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock).unwrap();
    c.proxy.reset_counts();
    let out = c.reconcile_command(&[]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stdout));
    assert!(
        text(&out.stderr).contains("another pass is running"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(c.proxy.requests(), 0, "{:?}", c.proxy.counts());
    // A dry run changes nothing: it runs beside.
    let out = c.reconcile_command(&["--dry-run"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    drop(held);
    let out = c.reconcile_command(&[]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(c.cost_tags()[&c.instances[0]][JOBID], "1");
}
