//! The submit filter end to end on a real Slurm: slurmctld runs the project's
//! job_submit.lua, which calls project-check, for sbatch, srun and salloc, for job arrays
//! and for `scontrol update`. Hostile comments must be refused without running anything.

mod support;

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
        std::os::unix::fs::symlink(support::bin("project-check"), &check_link).unwrap();
        let lua = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/slurm/job_submit.lua"))
            .unwrap();
        let cluster = SlurmCluster::start(SlurmOptions {
            job_submit_lua: Some(lua),
            daemon_env: vec![
                ("COST_TAGS_PROJECT_CHECK".into(), check_link.display().to_string()),
                ("COST_TAGS_CONFIG".into(), settings.display().to_string()),
            ],
            ..SlurmOptions::default()
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
        format!("x\ntouch {m}\n"),
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
    std::os::unix::fs::symlink(support::bin("project-check"), &f.check_link).unwrap();
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
    let Some(f) = Filter::start_with(&format!("[budget]\nenabled = true\ncache_file = {cache_file:?}\n")) else {
        return;
    };
    let client = support::moto::budgets_client(&moto.endpoint());
    support::moto::block_on(async {
        support::moto::add_budget(&client, "ProjectA", "1000", "1000.01").await;
        support::moto::add_budget(&client, "ProjectC", "1000", "12.5").await;
    });
    let mut refresh = std::process::Command::new(support::bin("cost-tags"));
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
