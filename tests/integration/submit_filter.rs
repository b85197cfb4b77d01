//! The submit filter end to end on a real Slurm: slurmctld runs the project's
//! job_submit.lua, which calls project-check, for sbatch, srun and salloc, for job arrays
//! and for `scontrol update`. Hostile comments must be refused without running anything.

use crate::support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Output;

use support::slurm::{ensure_test_users, parse_job_id, SlurmCluster, SlurmOptions};

const PROJECTS: &str = "\
# cost-tags test projects
ctalice = ProjectA, ProjectC
ctbob=ProjectB
@ctgpu = GpuProject
*=Shared
";

const NO_PROJECT: &str = "You need to specify a project. \"--comment ProjectName\"";

fn text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

struct Filter {
    cluster: SlurmCluster,
    /// The path slurmctld calls; a symlink the test can remove to break the check.
    check_link: std::path::PathBuf,
    settings: std::path::PathBuf,
}

impl Filter {
    fn start() -> Option<Filter> {
        Filter::start_with("")
    }

    /// The filter with more settings appended to cost-tags.toml.
    fn start_with(extra_settings: &str) -> Option<Filter> {
        Filter::start_with_env(extra_settings, &[])
    }

    /// The filter with more settings, and more environment for slurmctld.
    fn start_with_env(extra_settings: &str, env: &[(&str, &str)]) -> Option<Filter> {
        Filter::start_with_options(extra_settings, env, SlurmOptions::default())
    }

    /// The filter on a cluster started with `options` (its Lua and environment set here).
    fn start_with_options(extra_settings: &str, env: &[(&str, &str)], options: SlurmOptions) -> Option<Filter> {
        ensure_test_users();
        let etc = tempfile::Builder::new()
            .prefix("cost-tags-etc")
            .tempdir()
            .unwrap()
            .keep();
        std::fs::set_permissions(&etc, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(etc.join("projects_list.conf"), PROJECTS).unwrap();
        let settings = etc.join("cost-tags.toml");
        std::fs::write(
            &settings,
            format!("projects_file = {:?}\n{extra_settings}", etc.join("projects_list.conf")),
        )
        .unwrap();
        let check_link = etc.join("project-check");
        std::os::unix::fs::symlink(crate::bin("project-check"), &check_link).unwrap();
        let lua = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/slurm/job_submit.lua"))
            .unwrap();
        let cluster = SlurmCluster::start(SlurmOptions {
            job_submit_lua: Some(lua),
            daemon_env: [
                ("COST_TAGS_PROJECT_CHECK".into(), check_link.display().to_string()),
                ("COST_TAGS_CONFIG".into(), settings.display().to_string()),
            ]
            .into_iter()
            .chain(env.iter().map(|(k, v)| (k.to_string(), v.to_string())))
            .collect(),
            ..options
        })?;
        Some(Filter {
            cluster,
            check_link,
            settings,
        })
    }

    fn sbatch(&self, user: &str, args: &[&str]) -> Output {
        let mut all = vec!["-o", "/dev/null", "--hold"];
        all.extend_from_slice(args);
        self.cluster.run_as(user, "sbatch", &all)
    }

    fn accepted(&self, user: &str, args: &[&str]) -> u32 {
        let out = self.sbatch(user, args);
        assert!(
            out.status.success(),
            "{user} {args:?} should be accepted: {}",
            text(&out)
        );
        parse_job_id(&out.stdout).expect("job id")
    }

    fn refused(&self, out: Output, message: &str, what: &str) {
        assert!(!out.status.success(), "{what} should be refused: {}", text(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(message),
            "{what}: expected {message:?} in: {}",
            text(&out)
        );
    }
}

/// A filter with budgets on: its cache and reservation journal in a directory of its
/// own, which slurmctld's SlurmUser (root, in the fixture) owns.
struct Budgeted {
    f: Filter,
    dir: tempfile::TempDir,
}

impl Budgeted {
    /// `extra` goes into `[budget]`.
    fn start(extra: &str, options: SlurmOptions) -> Option<Budgeted> {
        let dir = tempfile::Builder::new().prefix("cost-tags-budget").tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let settings = format!(
            "[budget]\nenabled = true\ncache_file = {:?}\nreservations_file = {:?}\n{extra}",
            dir.path().join("budgets.jsonl"),
            dir.path().join("reservations.jsonl")
        );
        let f = Filter::start_with_options(&settings, &[], options)?;
        Some(Budgeted { f, dir })
    }

    fn journal(&self) -> std::path::PathBuf {
        self.dir.path().join("reservations.jsonl")
    }

    /// Writes the cache as `budget refresh` would, refreshed now: the partitions (a JSON
    /// object on one line) and one budget line per `budgets` line.
    fn write_cache(&self, partitions: &str, budgets: &str) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        std::fs::write(
            self.dir.path().join("budgets.jsonl"),
            format!(
                "{{\"format\":1,\"refreshed_at\":{now},\"account_id\":\"123456789012\",\"partitions\":{partitions}}}\n{budgets}\n"
            ),
        )
        .unwrap();
    }
}

#[test]
fn submit_filter_on_real_slurm() {
    let Some(f) = Filter::start() else { return };
    let not_allowed = |p: &str| format!("You are not allowed to use the project {p}");

    // No project: refused with the message users know.
    f.refused(
        f.sbatch("ctalice", &["--wrap", "true"]),
        NO_PROJECT,
        "sbatch without comment",
    );
    f.refused(
        f.sbatch("ctbob", &["--comment=", "--wrap", "true"]),
        NO_PROJECT,
        "empty comment",
    );

    // The three spellings of the comment, for two users.
    f.accepted("ctalice", &["--comment", "ProjectA", "--wrap", "true"]);
    f.accepted("ctalice", &["--comment=ProjectC", "--wrap", "true"]);
    let script = f.cluster.dir().join("job.sh");
    std::fs::write(&script, "#!/bin/sh\n#SBATCH --comment ProjectB\ntrue\n").unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    f.accepted("ctbob", &[script.to_str().unwrap()]);

    // Not allowed, including the grep traps.
    f.refused(
        f.sbatch("ctalice", &["--comment", "ProjectB", "--wrap", "true"]),
        &not_allowed("ProjectB"),
        "alice/B",
    );
    f.refused(
        f.sbatch("ctbob", &["--comment", "ProjectA", "--wrap", "true"]),
        &not_allowed("ProjectA"),
        "bob/A",
    );
    f.refused(
        f.sbatch("ctalice", &["--comment", "Proj", "--wrap", "true"]),
        &not_allowed("Proj"),
        "prefix",
    );
    f.refused(
        f.sbatch("ctalice", &["--comment", "projecta", "--wrap", "true"]),
        &not_allowed("projecta"),
        "case",
    );

    // Groups (ctbob is in ctgpu, ctalice is not) and projects open to everyone.
    f.accepted("ctbob", &["--comment", "GpuProject", "--wrap", "true"]);
    f.refused(
        f.sbatch("ctalice", &["--comment", "GpuProject", "--wrap", "true"]),
        &not_allowed("GpuProject"),
        "group",
    );
    f.accepted("ctcarol", &["--comment", "Shared", "--wrap", "true"]);

    // Job arrays.
    let array = f.accepted("ctalice", &["--array=1-3", "--comment", "ProjectA", "--wrap", "true"]);
    f.refused(
        f.sbatch("ctalice", &["--array=1-3", "--wrap", "true"]),
        NO_PROJECT,
        "array without comment",
    );

    // srun and salloc go through the same filter.
    let srun = f.cluster.run_as("ctalice", "srun", &["--comment", "ProjectB", "true"]);
    f.refused(srun, &not_allowed("ProjectB"), "srun alice/B");
    let srun = f.cluster.run_as("ctalice", "srun", &["true"]);
    f.refused(srun, NO_PROJECT, "srun without comment");
    let srun = f.cluster.run_as("ctalice", "srun", &["--comment", "ProjectA", "true"]);
    assert!(srun.status.success(), "srun alice/A: {}", text(&srun));
    let salloc = f.cluster.run_as("ctbob", "salloc", &["--comment", "ProjectA", "true"]);
    f.refused(salloc, &not_allowed("ProjectA"), "salloc bob/A");
    let salloc = f.cluster.run_as("ctbob", "salloc", &["--comment", "ProjectB", "true"]);
    assert!(salloc.status.success(), "salloc bob/B: {}", text(&salloc));

    // scontrol update of the project is checked like a submission.
    let job = f.accepted("ctalice", &["--comment", "ProjectA", "--wrap", "true"]);
    let update = |c: &str| {
        f.cluster.run_as(
            "ctalice",
            "scontrol",
            &["update", &format!("job={job}"), &format!("comment={c}")],
        )
    };
    // Slurm 22.05 tells the user of a refused update only "Unspecified error"; the
    // reason is in slurmctld's log, and the comment must be unchanged.
    let out = update("ProjectB");
    assert!(!out.status.success(), "modify to B should be refused: {}", text(&out));
    assert!(f
        .cluster
        .slurmctld_log()
        .contains(&format!("cost-tags: refused: {}", not_allowed("ProjectB"))));
    let shown = f.cluster.run_root("scontrol", &["show", "job", &job.to_string()]);
    assert!(
        String::from_utf8_lossy(&shown.stdout).contains("Comment=ProjectA"),
        "{}",
        text(&shown)
    );
    let out = update("ProjectC");
    assert!(out.status.success(), "modify to C: {}", text(&out));
    let shown = f.cluster.run_root("scontrol", &["show", "job", &job.to_string()]);
    assert!(
        String::from_utf8_lossy(&shown.stdout).contains("Comment=ProjectC"),
        "{}",
        text(&shown)
    );
    let out = f.cluster.run_as(
        "ctalice",
        "scontrol",
        &["update", &format!("job={array}"), "TimeLimit=10"],
    );
    assert!(
        out.status.success(),
        "a modify that leaves the project alone passes: {}",
        text(&out)
    );

    // Hostile comments: refused, and nothing they try to run has run.
    let marker = f.cluster.dir().join("injected");
    let m = marker.display().to_string();
    let hostile = [
        format!("'; touch {m}; '"),
        format!("$(touch {m})"),
        format!("`touch {m}`"),
        format!("\"; touch {m}; \""),
        format!("ProjectA'$(touch {m})'"),
        format!("ProjectA; touch {m}"),
        format!("%s%n{m}"),
        format!("{}{}", "A".repeat(1024 - 9), "$(touch "),
        "\u{202e}ProjectA\u{00e9}".to_string(),
    ];
    for comment in &hostile {
        let arg = format!("--comment={comment}");
        let out = f.sbatch("ctalice", &[&arg, "--wrap", "true"]);
        f.refused(
            out,
            "You are not allowed to use the project",
            &format!("hostile {comment:?}"),
        );
        assert!(!marker.exists(), "the comment {comment:?} ran a command");
    }

    let out = f.sbatch("ctalice", &[&format!("--comment=x\ntouch {m}\n"), "--wrap", "true"]);
    f.refused(out, "The --comment value contains a newline", "a newline");
    assert!(!marker.exists(), "the newline comment ran a command");

    // Fail closed: a broken settings file or a missing project-check refuses the job with
    // a message that tells the administrator what broke.
    let good = std::fs::read_to_string(&f.settings).unwrap();
    std::fs::write(&f.settings, "projects_file = 3\n").unwrap();
    let out = f.sbatch("ctalice", &["--comment", "ProjectA", "--wrap", "true"]);
    f.refused(out, &f.settings.display().to_string(), "broken settings");
    std::fs::write(&f.settings, good).unwrap();
    std::fs::remove_file(&f.check_link).unwrap();
    let out = f.sbatch("ctalice", &["--comment", "ProjectA", "--wrap", "true"]);
    f.refused(out, "project-check is missing", "missing project-check");
    std::os::unix::fs::symlink(crate::bin("project-check"), &f.check_link).unwrap();
    f.accepted("ctalice", &["--comment", "ProjectA", "--wrap", "true"]);

    // Root is exempt.
    let out = f
        .cluster
        .run_root("sbatch", &["-o", "/dev/null", "--hold", "--wrap", "true"]);
    assert!(out.status.success(), "root without project: {}", text(&out));

    assert!(
        !f.cluster.node_is_drained(),
        "node drained: {}",
        f.cluster.node_reason()
    );
}

/// Budgets through the real submission path: the head node's timer job (`cost-tags budget
/// refresh`, here against moto) writes the cache; slurmctld's project-check reads only it.
#[test]
fn spent_budgets_are_refused_at_submission() {
    let Some(moto) = support::moto::MotoServer::start() else {
        return;
    };
    let cache = tempfile::Builder::new().prefix("cost-tags-budget").tempdir().unwrap();
    std::fs::set_permissions(cache.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let cache_file = cache.path().join("budgets.jsonl");
    let Some(f) = Filter::start_with(&format!(
        "[budget]\nenabled = true\nenforce = \"spent\"\ncache_file = {cache_file:?}\n"
    )) else {
        return;
    };
    let client = support::moto::budgets_client(&moto.endpoint());
    support::moto::block_on(async {
        support::moto::add_budget(&client, "ProjectA", "1000", "1000.01").await;
        support::moto::add_budget(&client, "ProjectC", "1000", "12.5").await;
    });
    let mut refresh = std::process::Command::new(crate::bin("cost-tags"));
    support::moto::apply_env(&mut refresh, &moto.endpoint());
    let out = refresh
        .env("COST_TAGS_CONFIG", &f.settings)
        .args(["budget", "refresh"])
        .output()
        .unwrap();
    assert!(out.status.success(), "refresh: {}", text(&out));

    f.refused(
        f.sbatch("ctalice", &["--comment", "ProjectA", "--wrap", "true"]),
        "The Project ProjectA does not have more budget allocated for this month.",
        "spent budget",
    );
    f.refused(
        f.sbatch("ctalice", &["--comment", "Shared", "--wrap", "true"]),
        "The Project Shared does not have any associated budget. Please ask the administrator to create it.",
        "project without budget",
    );
    f.accepted("ctalice", &["--comment", "ProjectC", "--wrap", "true"]);
    // A modify onto the spent project is refused the same way.
    let job = f.accepted("ctalice", &["--comment", "ProjectC", "--wrap", "true"]);
    let out = f.cluster.run_as(
        "ctalice",
        "scontrol",
        &["update", &format!("job={job}"), "comment=ProjectA"],
    );
    assert!(!out.status.success(), "modify to a spent project: {}", text(&out));
    assert!(f
        .cluster
        .slurmctld_log()
        .contains("cost-tags: refused: The Project ProjectA does not have more budget allocated for this month."));
    // The projects file still comes first.
    f.refused(
        f.sbatch("ctbob", &["--comment", "ProjectC", "--wrap", "true"]),
        "You are not allowed to use the project ProjectC",
        "budget does not open a project",
    );
}

/// Committed budgets through the real submission path (issue 14): the cache `budget
/// refresh` writes says ProjectA has 100 USD, 40 spent as AWS last said, 5 accrued since and
/// 5 committed by running jobs (50 left), and that a node of partition compute costs 10 USD
/// an hour. sbatch shows the submitter the refusal, or on acceptance what the job may cost.
#[test]
fn committed_budgets_price_the_job_at_submission() {
    let Some(b) = Budgeted::start("", SlurmOptions::default()) else {
        return;
    };
    let f = &b.f;
    b.write_cache(
        r#"{"compute":{"instance":"c5.large","hourly":10.0,"cpus":2,"default_minutes":30,"is_default":true}}"#,
        r#"{"name":"ProjectA","limit":100.0,"actual":40.0,"unit":"USD","period":"MONTHLY","accrued":5.0,"committed":5.0}"#,
    );
    // 12 h of one of the node's 2 CPUs (sbatch's default): 60 USD, more than the 50 left.
    f.refused(
        f.sbatch(
            "ctalice",
            &[
                "--comment",
                "ProjectA",
                "--time",
                "12:00:00",
                "-N",
                "1",
                "--wrap",
                "true",
            ],
        ),
        "The project ProjectA has 50.00 USD left this month; this job may cost up to 60.00 USD \
         (1 node x 12 h of c5.large). Ask for less time or fewer nodes, or ask the administrator.",
        "a job whose worst case passes what is left",
    );
    // 1 h of one of the node's 2 CPUs: 5 USD. Accepted, and sbatch says so.
    let out = f.sbatch(
        "ctalice",
        &["--comment", "ProjectA", "--time", "60", "-n", "1", "--wrap", "true"],
    );
    assert!(out.status.success(), "a smaller job: {}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("cost-tags: ProjectA: this job may cost up to 5.00 USD; 50.00 USD left this month"),
        "the acceptance line: {}",
        text(&out)
    );
    // No --time: the partition's DefaultTime in the cache; --exclusive: the whole node
    // (30 min x 10 USD = 5 USD).
    let out = f.sbatch("ctalice", &["--comment", "ProjectA", "--exclusive", "--wrap", "true"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("may cost up to 5.00 USD"),
        "{}",
        text(&out)
    );
}

/// Reservations between refreshes (issue 21.4): the cache says ProjectA has 0.49 USD left
/// and a c5.xlarge node of partition compute costs 0.17 USD an hour. Three exclusive
/// one-node, one-hour jobs in a row with no refresh between them: each reserves its 0.17,
/// so the first two go in (0.49, then 0.32 left) and the third is refused with 0.15 left.
/// slurmctld runs project-check as the fixture's SlurmUser (root), who owns the journal's
/// directory.
#[test]
fn submissions_between_refreshes_reserve_their_worst_case() {
    let Some(b) = Budgeted::start("enforce = \"committed\"\n", SlurmOptions::default()) else {
        return;
    };
    let f = &b.f;
    // 10 limit - 9 spent - 0.31 accrued - 0.20 committed = 0.49 left.
    b.write_cache(
        r#"{"compute":{"instance":"c5.xlarge","hourly":0.17,"cpus":4,"is_default":true}}"#,
        r#"{"name":"ProjectA","limit":10.0,"actual":9.0,"unit":"USD","period":"MONTHLY","accrued":0.31,"committed":0.2}"#,
    );
    let job = [
        "-N1",
        "--exclusive",
        "-t",
        "60",
        "--comment",
        "ProjectA",
        "--wrap",
        "true",
    ];
    for left in ["0.49", "0.32"] {
        let out = f.sbatch("ctalice", &job);
        assert!(out.status.success(), "{left} left: {}", text(&out));
        assert!(
            String::from_utf8_lossy(&out.stderr)
                .contains(&format!("this job may cost up to 0.17 USD; {left} USD left this month")),
            "{}",
            text(&out)
        );
    }
    f.refused(
        f.sbatch("ctalice", &job),
        "The project ProjectA has 0.15 USD left this month; this job may cost up to 0.17 USD \
         (1 node x 1 h of c5.xlarge). Ask for less time or fewer nodes, or ask the administrator.",
        "the third job, with two reserved before it",
    );
    // Two reservations, the refused job none; the journal is private to SlurmUser.
    let journal = b.journal();
    let text = std::fs::read_to_string(&journal).unwrap();
    assert_eq!(text.lines().count(), 2, "{text}");
    assert!(
        text.lines()
            .all(|l| l.contains("\"budget\":\"ProjectA\",\"cost\":0.17")),
        "{text}"
    );
    assert_eq!(std::fs::metadata(&journal).unwrap().permissions().mode() & 0o777, 0o600);
}

/// Issue 21: a committed budget holds against every ordinary way a job asks for more.
/// ProjectA has 0.49 USD left; a c5.xlarge node (4 CPUs) costs 0.17 USD an hour, a
/// g5.12xlarge (48 CPUs, 4 GPUs) 5.672. Each sbatch goes through job_submit.lua as
/// slurmctld fills `job_desc`, and the refusal names the true worst case.
#[test]
fn budgets_hold_against_every_way_a_job_asks_for_more() {
    // GresTypes=gpu, so that --gpus reaches job_submit.lua.
    let options = SlurmOptions {
        gres_gpu: true,
        ..SlurmOptions::default()
    };
    let Some(b) = Budgeted::start("", options) else {
        return;
    };
    let f = &b.f;
    b.write_cache(
        concat!(
            r#"{"compute":{"instance":"c5.xlarge","hourly":0.17,"cpus":4,"default_minutes":60,"is_default":true},"#,
            r#""gpu":{"instance":"g5.12xlarge","hourly":5.672,"cpus":48,"gpus":4}}"#
        ),
        r#"{"name":"ProjectA","limit":100.0,"actual":99.51,"unit":"USD","period":"MONTHLY","accrued":0.0,"committed":0.0}"#,
    );
    let refused = |args: &[&str], worst: &str| {
        let mut all = vec!["--comment", "ProjectA"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--wrap", "true"]);
        f.refused(
            f.sbatch("ctalice", &all),
            &format!(
                "The project ProjectA has 0.49 USD left this month; this job may cost up to {worst}. \
                 Ask for less time or fewer nodes, or ask the administrator."
            ),
            &format!("sbatch {args:?}"),
        );
    };
    // 400 tasks of 1 CPU on 4-CPU nodes: 100 nodes x 1 h x 0.17.
    refused(&["-n", "400", "-t", "60"], "17.00 USD (100 nodes x 1 h of c5.xlarge)");
    // Up to 10 whole nodes.
    refused(
        &["-N", "1-10", "--exclusive", "-t", "60"],
        "1.70 USD (10 nodes x 1 h of c5.xlarge)",
    );
    // 10 array tasks of one whole node each.
    refused(
        &["--array=0-9", "-N1", "--exclusive", "-t", "60"],
        "1.70 USD (10 tasks x 1 node x 1 h of c5.xlarge)",
    );
    // 8 GPUs on 4-GPU nodes: 2 whole nodes x 5.672.
    refused(
        &["-p", "gpu", "--gpus=8", "-t", "60"],
        "11.34 USD (2 nodes x 1 h of g5.12xlarge)",
    );
    // Listing both partitions: priced in the dearer one.
    refused(
        &["-p", "compute,gpu", "-N1", "--exclusive", "-t", "60"],
        "5.67 USD (1 node x 1 h of g5.12xlarge)",
    );
    // UNLIMITED with no MaxTime: until the end of the month, far more than 0.49.
    let out = f.sbatch(
        "ctalice",
        &[
            "--comment",
            "ProjectA",
            "-N1",
            "--exclusive",
            "--time=UNLIMITED",
            "--wrap",
            "true",
        ],
    );
    f.refused(out, "this job may cost up to", "--time=UNLIMITED");
    // One whole node for an hour fits: accepted, and told.
    let out = f.sbatch(
        "ctalice",
        &[
            "--comment",
            "ProjectA",
            "-N1",
            "--exclusive",
            "-t",
            "60",
            "--wrap",
            "true",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cost-tags: ProjectA: this job may cost up to 0.17 USD"),
        "{}",
        text(&out)
    );
}

/// Issue 21: `scontrol update` of a pending job's size is priced as the job would be
/// after the change, with the job's own worst case (already counted) as extra room.
/// ProjectA has 0.49 USD left; a whole c5.xlarge node is 0.17 USD an hour.
#[test]
fn a_change_of_size_is_priced_with_the_job_s_own_worst_case_as_room() {
    let Some(b) = Budgeted::start("", SlurmOptions::default()) else {
        return;
    };
    let f = &b.f;
    b.write_cache(
        r#"{"compute":{"instance":"c5.xlarge","hourly":0.17,"cpus":4,"default_minutes":60,"is_default":true}}"#,
        r#"{"name":"ProjectA","limit":100.0,"actual":99.51,"unit":"USD","period":"MONTHLY"}"#,
    );
    // 1 node x 1 h = 0.17: in.
    let job = f.accepted(
        "ctalice",
        &[
            "--comment",
            "ProjectA",
            "-N1",
            "--exclusive",
            "-t",
            "60",
            "--wrap",
            "true",
        ],
    );
    let update = |setting: &str| {
        f.cluster
            .run_as("ctalice", "scontrol", &["update", &format!("job={job}"), setting])
    };
    let show = || {
        let out = f.cluster.run_root("scontrol", &["show", "job", &job.to_string()]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    // Submitted, it reserved 0.17: 0.32 left. 2 h on a whole node = 0.34, within 0.32 +
    // its own (job_rec does not say the job is --exclusive: the change is priced on whole
    // nodes, the job as it is on its one CPU of four, 1 h x 0.17 / 4 = 0.0425: the
    // smaller room). It reserves what it adds: 0.34 - 0.0425 = 0.2975.
    let out = update("TimeLimit=120");
    assert!(out.status.success(), "TimeLimit=120: {}", text(&out));
    assert!(show().contains("TimeLimit=02:00:00"), "{}", show());
    // 5 h = 0.85 > 0.49 - 0.17 - 0.2975 = 0.0225 left + its own 2 h x 0.17 / 4 = 0.085:
    // refused, and unchanged.
    let out = update("TimeLimit=300");
    assert!(!out.status.success(), "TimeLimit=300 should be refused: {}", text(&out));
    assert!(
        f.cluster.slurmctld_log().contains(
            "cost-tags: refused: The project ProjectA has 0.02 USD left this month besides this job's own \
             0.09 USD; this job may cost up to 0.85 USD (1 node x 5 h of c5.xlarge)"
        ),
        "{}",
        f.cluster.slurmctld_log()
    );
    assert!(show().contains("TimeLimit=02:00:00"), "{}", show());
    // 3 nodes x 2 h = 1.02 > 0.1075: refused.
    let out = update("NumNodes=3");
    assert!(!out.status.success(), "NumNodes=3 should be refused: {}", text(&out));
    assert!(
        f.cluster
            .slurmctld_log()
            .contains("this job may cost up to 1.02 USD (3 nodes x 2 h of c5.xlarge)"),
        "{}",
        f.cluster.slurmctld_log()
    );
    // A change that does not touch the size or the project is not priced.
    let out = update("Name=renamed");
    assert!(out.status.success(), "Name=renamed: {}", text(&out));
    // No acceptance line was sent where slurmctld cannot show it.
    assert!(
        !f.cluster
            .slurmctld_log()
            .contains("log.user() in job_modify is not supported"),
        "{}",
        f.cluster.slurmctld_log()
    );
}

/// Text a user types is the user's to fix: whatever it holds, the answer is a plain
/// refusal naming the field, never "the project check is broken" (which any user could
/// otherwise raise at will in the administrator's log). A newline in a comment would
/// forge a record in sacct and squeue output, so it is refused even when the project
/// comes from the account.
#[test]
fn unusable_user_text_is_a_plain_refusal() {
    use std::os::unix::ffi::OsStrExt;
    let Some(f) = Filter::start_with("project_source = \"account\"\n") else {
        return;
    };
    let forged = "x\n9999999|victim|compute|VictimProject|(null)|y";
    f.refused(
        f.sbatch(
            "ctalice",
            &["--account", "ProjectA", "--comment", forged, "--wrap", "true"],
        ),
        "The --comment value contains a newline (character 2)",
        "a newline in the comment",
    );
    f.refused(
        f.sbatch(
            "ctalice",
            &["--account", "ProjectA", "--comment", "a\u{1b}[2Jb", "--wrap", "true"],
        ),
        "The --comment value contains the control character U+001B",
        "an escape in the comment",
    );
    let not_utf8 = std::ffi::OsStr::from_bytes(b"--comment=Proj\xffect");
    let args: [&std::ffi::OsStr; 7] = [
        "-o".as_ref(),
        "/dev/null".as_ref(),
        "--hold".as_ref(),
        "--account=ProjectA".as_ref(),
        not_utf8,
        "--wrap".as_ref(),
        "true".as_ref(),
    ];
    f.refused(
        f.cluster.run_as("ctalice", "sbatch", &args),
        "The --comment value is not valid UTF-8 text",
        "a comment that is not UTF-8",
    );
    // The other fields a user types and job_submit.lua passes on (its numbers and the
    // user name are not typed: project_check_cli::every_value_the_filter_passes_may_be_bad_bytes
    // tries those with the Lua's argv). Before, a --partition that is not UTF-8 was
    // "the project check is broken".
    for (bad, option) in [
        (&b"--partition=comp\xffute"[..], "--partition"),
        (&b"--account=Proj\xffect"[..], "--account"),
        (&b"--wckey=Proj\x1b[2J\xffect"[..], "--wckey"),
    ] {
        let mut args: Vec<&std::ffi::OsStr> = ["-o", "/dev/null", "--hold", "--wrap", "true"]
            .iter()
            .map(|a| a.as_ref())
            .collect();
        if option != "--account" {
            args.push("--account=ProjectA".as_ref());
        }
        args.push(std::ffi::OsStr::from_bytes(bad));
        let out = f.cluster.run_as("ctalice", "sbatch", &args);
        assert!(
            !out.stderr.contains(&0x1b),
            "{option}: the raw bytes reached the user: {}",
            text(&out)
        );
        f.refused(
            out,
            &format!("The {option} value is not valid UTF-8 text. Use plain text."),
            &format!("a {option} that is not UTF-8"),
        );
    }
    // Quoted for sh, 40,000 single quotes are 160,000 bytes: past the kernel's cap on
    // one argument, where exec failed and the filter looked broken.
    let quotes = format!("--comment={}", "'".repeat(40_000));
    f.refused(
        f.sbatch("ctalice", &["--account", "ProjectA", &quotes, "--wrap", "true"]),
        "The job's --comment, --account and --wckey are 40008 bytes long in all; at most 30000 are accepted.",
        "a very long comment",
    );
    // Free text is fine when it is one line of text, whatever it says (Slurm itself
    // refuses a comment over 1024 bytes, after the filter).
    let free = format!("run 7: $(rm -rf /) 'quoted' \u{e9}t\u{e9} {}", "x".repeat(900));
    f.accepted(
        "ctalice",
        &["--account", "ProjectA", "--comment", &free, "--wrap", "true"],
    );
    let log = f.cluster.slurmctld_log();
    assert!(
        !log.contains("cost-tags job_submit.lua:"),
        "an administrator error was logged:\n{log}"
    );
}

/// A hung user directory or file system must not stall slurmctld: the check is bounded
/// by COST_TAGS_CHECK_TIMEOUT, refused with the cause, and logged for the administrator.
/// A FIFO with no writer as the projects file hangs project-check in open(), as a dead
/// NFS server would.
#[test]
fn a_hung_check_is_refused_within_its_timeout() {
    let Some(f) = Filter::start_with_env("", &[("COST_TAGS_CHECK_TIMEOUT", "1")]) else {
        return;
    };
    f.accepted("ctalice", &["--comment", "ProjectA", "--wrap", "true"]);
    let projects = f.settings.with_file_name("projects_list.conf");
    std::fs::remove_file(&projects).unwrap();
    nix::unistd::mkfifo(&projects, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
    let started = std::time::Instant::now();
    let out = f.sbatch("ctalice", &["--comment", "ProjectA", "--wrap", "true"]);
    let took = started.elapsed();
    f.refused(out, "project-check did not answer within 1 s", "a hung check");
    assert!(
        f.cluster
            .slurmctld_log()
            .contains("cost-tags job_submit.lua: project-check did not answer within 1 s"),
        "not logged for the administrator"
    );
    // slurmctld answers again at once: the filter does not hold its locks.
    std::fs::remove_file(&projects).unwrap();
    std::fs::write(&projects, PROJECTS).unwrap();
    f.accepted("ctalice", &["--comment", "ProjectA", "--wrap", "true"]);
    eprintln!("a hung check was refused after {took:?}");
}
