//! The real prolog.d/epilog.d scripts (scripts/slurm/90_cost-tags-*), run by dash
//! (Ubuntu's /bin/sh, the strictest common one) with only what slurmd gives a prolog:
//! the job's SLURM_* variables and a PATH. A broken cost-tags.env, or a cost-prolog that
//! is missing or cannot run, must never make the hook exit non-zero (that drains the
//! node); only `strict = true` may, through cost-prolog's own exit 1.
//!
//! Most tests point the scripts at the binaries cargo built and at a test env file
//! through COST_TAGS_BIN_DIR and COST_TAGS_ENV_FILE. `production_paths` instead gives
//! the script its real /opt/slurm, in a private mount namespace, so the defaults are
//! tested too.

use crate::support;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use support::moto::{env_for, MotoInstance};
use support::{namespace, process::find_program};

const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
const JOBID: &str = "aws-parallelcluster-jobid";

fn repo_script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/slurm").join(name)
}

fn dash() -> Option<PathBuf> {
    let found = find_program("dash");
    support::require("dash (apt-get install dash)", found.is_some());
    found
}

fn write(path: &Path, text: &str, mode: u32) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn settings(dir: &Path, extra: &str) -> String {
    format!(
        "state_dir = {:?}\ncache_dir = {:?}\ndeadline = 3\n{extra}",
        dir.join("state"),
        dir.join("run")
    )
}

/// What slurmd gives a hook: the job's variables and a PATH, nothing of its own.
fn as_slurmd(c: &mut Command, job: &str) {
    c.env_clear()
        .env("PATH", PATH)
        .env("SLURM_JOB_ID", job)
        .env("SLURM_JOB_USER", "ctalice")
        .env("SLURM_JOB_COMMENT", "ProjectA")
        .env("SLURM_JOB_PARTITION", "compute")
        .env("SLURM_CLUSTER_NAME", "test")
        .env("SLURM_SCRIPT_CONTEXT", "prolog_slurmd")
        .stdin(Stdio::null());
}

/// dash runs the repository's `hook` for `job`, finding the binary in `bin_dir` and the
/// environment file at `env_file`.
fn run_hook(dash: &Path, hook: &str, job: &str, bin_dir: &Path, env_file: &Path) -> Output {
    let mut c = Command::new(dash);
    c.arg(repo_script(hook));
    as_slurmd(&mut c, job);
    c.env("COST_TAGS_BIN_DIR", bin_dir)
        .env("COST_TAGS_ENV_FILE", env_file)
        .output()
        .unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `export NAME='value'` lines for the env file: what an administrator writes for a VPC
/// endpoint, here moto's and the IMDS emulator's.
fn env_lines(vars: &[(String, String)]) -> String {
    vars.iter().map(|(k, v)| format!("export {k}='{v}'\n")).collect()
}

/// The directory holding the binaries cargo built (cost-prolog, cost-epilog).
fn built_bin_dir() -> PathBuf {
    crate::bin("cost-prolog").parent().unwrap().to_path_buf()
}

/// An instance in moto, its IMDS, and an env file that wires cost-prolog to both, with
/// one broken line (an unterminated quote, which made dash exit 2) in the middle.
struct Node(MotoInstance);

impl std::ops::Deref for Node {
    type Target = MotoInstance;
    fn deref(&self) -> &MotoInstance {
        &self.0
    }
}

impl Node {
    fn start() -> Option<Node> {
        MotoInstance::start().map(Node)
    }

    /// Env file lines, a broken one third, and COST_TAGS_CONFIG when `config` is given.
    fn env_file_text(&self, config: Option<&Path>) -> String {
        let mut vars = env_for(&self.moto.endpoint());
        vars.extend(self.imds.env());
        let mut lines = env_lines(&vars[..1]);
        lines.push_str("# a proxy, half typed:\n");
        lines.push_str("HTTPS_PROXY='http://proxy.example:3128\n");
        lines.push_str(&env_lines(&vars[1..]));
        if let Some(config) = config {
            lines.push_str(&format!("COST_TAGS_CONFIG={}\n", config.display()));
        }
        lines
    }

    fn cost_tags(&self) -> BTreeMap<String, String> {
        self.moto
            .tags(&self.instance)
            .into_iter()
            .filter(|(k, _)| k.starts_with("aws-parallelcluster-"))
            .collect()
    }
}

#[test]
fn broken_env_file_is_logged_and_the_rest_applies() {
    let Some(dash) = dash() else { return };
    let Some(node) = Node::start() else { return };
    let d = node.dir.path();
    let config = d.join("cost-tags.toml");
    write(&config, &settings(d, ""), 0o644);
    let env_file = d.join("cost-tags.env");
    write(&env_file, &node.env_file_text(Some(&config)), 0o600);

    let out = run_hook(&dash, "90_cost-tags-prolog", "7", &built_bin_dir(), &env_file);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains(&format!(
            "{}:3: unterminated single quote; line ignored",
            env_file.display()
        )),
        "{err}"
    );
    assert!(
        !err.contains("proxy.example"),
        "the line's content is not logged: {err}"
    );
    assert_eq!(
        node.cost_tags().get(JOBID).map(String::as_str),
        Some("7"),
        "the other lines reached the SDK: {err}"
    );

    let out = run_hook(&dash, "90_cost-tags-epilog", "7", &built_bin_dir(), &env_file);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(node.cost_tags(), BTreeMap::new());
}

#[test]
fn a_binary_that_cannot_run_is_logged_and_exits_0() {
    let Some(dash) = dash() else { return };
    let dir = tempfile::tempdir().unwrap();
    let env_file = dir.path().join("no-cost-tags.env");
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    // Stand-ins: a file that is not executable; a binary built for a newer glibc (the
    // loader exits 1, like cost-prolog under strict, which is why the hook probes with
    // --version first; message as ld.so prints it); one that starts, then is killed (the
    // OOM killer; a panic in the release build aborts likewise).
    let unrunnable = dir.path().join("unrunnable");
    let new_glibc = dir.path().join("new-glibc");
    let killed = dir.path().join("killed");
    for hook in ["cost-prolog", "cost-epilog"] {
        write(&unrunnable.join(hook), "#!/bin/sh\nexit 0\n", 0o644);
        write(
            &new_glibc.join(hook),
            &format!("#!/bin/sh\necho \"{hook}: /lib64/libc.so.6: version \\`GLIBC_2.99' not found\" >&2\nexit 1\n"),
            0o755,
        );
        write(
            &killed.join(hook),
            "#!/bin/sh\n[ \"$1\" = --version ] && exit 0\nkill -KILL $$\n",
            0o755,
        );
    }
    for (bin_dir, status, why) in [
        (&empty, 127, "not found"),
        (&unrunnable, 126, "Permission denied"),
        (&new_glibc, 1, "version `GLIBC_2.99' not found"),
        (&killed, 137, "killed or crashed"),
    ] {
        for (hook, binary) in [
            ("90_cost-tags-prolog", "cost-prolog"),
            ("90_cost-tags-epilog", "cost-epilog"),
        ] {
            let out = run_hook(&dash, hook, "8", bin_dir, &env_file);
            let err = stderr(&out);
            assert_eq!(out.status.code(), Some(0), "{hook} with {bin_dir:?}: {err}");
            let want = format!(
                "cost-tags: {}/{binary} could not run (exit status {status}: ",
                bin_dir.display()
            );
            assert!(err.contains(&want), "{hook}: want {want:?} in {err}");
            assert!(err.contains(why), "{hook}: want {why:?} in {err}");
            assert!(err.contains("): job 8 not"), "{hook}: {err}");
        }
    }
}

/// `strict = true` is cost-prolog's decision, and the script passes its exit 1 on.
#[test]
fn strict_failure_is_passed_on() {
    let Some(dash) = dash() else { return };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let config = d.join("cost-tags.toml");
    write(&config, &settings(d, "strict = true\n"), 0o644);
    let nothing_listens = format!("http://127.0.0.1:{}", support::process::free_port());
    let mut vars = env_for(&nothing_listens);
    vars.push(("AWS_EC2_METADATA_SERVICE_ENDPOINT".into(), nothing_listens.clone()));
    let env_file = d.join("cost-tags.env");
    let text = env_lines(&vars) + &format!("COST_TAGS_CONFIG={}\n", config.display());
    write(&env_file, &text, 0o600);
    let out = run_hook(&dash, "90_cost-tags-prolog", "9", &built_bin_dir(), &env_file);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("tags owed"), "{}", stderr(&out));
}

/// The script at its real paths: /opt/slurm (a test tree bound over /opt in a private
/// mount namespace) holds the binary, cost-tags.toml and a broken cost-tags.env.
#[test]
fn production_paths() {
    let Some(dash) = dash() else { return };
    if !namespace::available() {
        return;
    }
    let Some(node) = Node::start() else { return };
    let d = node.dir.path();
    let opt = d.join("opt");
    let etc = opt.join("slurm/etc");
    let bin = opt.join("slurm/bin");
    std::fs::create_dir_all(&bin).unwrap();
    for b in ["cost-prolog", "cost-epilog"] {
        std::os::unix::fs::symlink(crate::bin(b), bin.join(b)).unwrap();
    }
    // The default settings file; the env file must not need to name it.
    write(&etc.join("cost-tags.toml"), &settings(d, ""), 0o644);
    let text = node.env_file_text(None);
    write(&etc.join("cost-tags.env"), &text, 0o644);
    let hook = |name: &str, job: &str, opt_tree: &Path| {
        let mut c = namespace::command(&[(opt_tree, Path::new("/opt"))], &dash);
        c.arg(repo_script(name));
        as_slurmd(&mut c, job);
        c.output().unwrap()
    };

    let out = hook("90_cost-tags-prolog", "11", &opt);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains("/opt/slurm/etc/cost-tags.env:3: unterminated single quote; line ignored"),
        "{err}"
    );
    assert_eq!(node.cost_tags().get(JOBID).map(String::as_str), Some("11"), "{err}");
    let out = hook("90_cost-tags-epilog", "11", &opt);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(node.cost_tags(), BTreeMap::new());

    // No binary at all: /opt/slurm/bin is empty.
    std::fs::remove_file(bin.join("cost-prolog")).unwrap();
    let out = hook("90_cost-tags-prolog", "12", &opt);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains("cost-tags: /opt/slurm/bin/cost-prolog could not run (exit status 127: ")
            && err.contains("): job 12 not tagged, node left in service"),
        "{err}"
    );
}
