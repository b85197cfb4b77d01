//! The whole of cost-tags installed on a throwaway cluster: a private Slurm with the
//! project's job_submit.lua and prolog/epilog hooks, a moto server (behind the fault
//! proxy, so a test can take AWS down) holding the node's EC2 instance, and the IMDSv2
//! emulator serving that instance's identity. The hooks are the real scripts from
//! `scripts/slurm`, with `/opt/slurm` moved under a private root; slurmd gives prologs
//! no environment of its own, so AWS endpoints reach them through `cost-tags.env`
//! exactly as an administrator would set a VPC endpoint. [`LocalSetup`] turns on controller
//! mode's parts: settings tables, and slurmctld's PrologSlurmctld/EpilogSlurmctld running
//! the project's wake hook (scripts/slurm/cost-tags-wake).

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use super::aws_proxy::AwsProxy;
use super::bins::Bins;
use super::imds::Imds;
use super::moto::{env_for, MotoServer};
use super::slurm::{ensure_test_users, SlurmCluster, SlurmOptions};
use super::slurmdbd::SlurmDbd;

pub const PROJECTS: &str = "\
# who may charge which project
ctalice = ProjectA, ProjectC
ctbob = ProjectB
@ctgpu = GpuProject
*=Shared
";

/// What a test changes in the cluster [`LocalCluster::start_with`] starts; the default is
/// [`LocalCluster::start`]'s node-mode cluster.
#[derive(Debug, Clone, Default)]
pub struct LocalSetup {
    /// Appended to cost-tags.toml, after its top-level keys (so TOML tables such as
    /// `[tagging]` go here).
    pub settings_tail: String,
    /// PrologSlurmctld and EpilogSlurmctld run the project's wake hook, its wake file
    /// moved to [`LocalCluster::wake_file`] (what `cost-tags install --tagging
    /// controller` writes on a head node).
    pub wake_hook: bool,
    /// Slurm accounting: a private slurmdbd and MariaDB ([`SlurmDbd`]) store the jobs,
    /// comments included, and the node gathers their CPU and memory use, so `cost-tags
    /// report`, `job` and `metrics` have what a head node's sacct has.
    pub accounting: bool,
}

pub struct LocalCluster {
    pub slurm: SlurmCluster,
    /// With [`LocalSetup::accounting`]; dropped after the cluster that writes to it.
    _dbd: Option<SlurmDbd>,
    pub imds: Imds,
    pub proxy: AwsProxy,
    pub moto: MotoServer,
    pub instance: String,
    /// Stands for `/opt/slurm` on a real cluster.
    pub opt_slurm: PathBuf,
    /// The binaries installed in it (and run by a [`super::head_node::HeadNode`]).
    pub bins: Bins,
    _root: tempfile::TempDir,
}

/// The wake file the wake hook names as shipped.
const WAKE_FILE: &str = "/run/cost-tags/wake";

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

impl LocalCluster {
    /// Starts everything; None when Slurm or moto is missing on a developer machine.
    pub fn start(bins: &Bins) -> Option<LocalCluster> {
        Self::start_with(bins, LocalSetup::default())
    }

    /// [`LocalCluster::start`], changed as `setup` says.
    pub fn start_with(bins: &Bins, setup: LocalSetup) -> Option<LocalCluster> {
        ensure_test_users();
        let moto = MotoServer::start()?;
        let instance = moto.run_instances(1).remove(0);
        let proxy = AwsProxy::start(&moto.endpoint());
        let imds = Imds::start(&instance, "us-east-1");

        let root = tempfile::Builder::new().prefix("cost-tags-local").tempdir().unwrap();
        std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let opt_slurm = root.path().join("opt/slurm");
        let (bin, etc) = (opt_slurm.join("bin"), opt_slurm.join("etc"));
        for d in [&bin, &etc.join("scripts/prolog.d"), &etc.join("scripts/epilog.d")] {
            std::fs::create_dir_all(d).unwrap();
        }
        for b in ["project-check", "cost-prolog", "cost-epilog"] {
            std::os::unix::fs::symlink(bins.get(b), bin.join(b)).unwrap();
        }
        std::fs::write(etc.join("projects_list.conf"), PROJECTS).unwrap();
        let settings = etc.join("cost-tags.toml");
        std::fs::write(
            &settings,
            format!(
                "projects_file = {:?}\nstate_dir = {:?}\ncache_dir = {:?}\ndeadline = 5\n{}",
                etc.join("projects_list.conf"),
                root.path().join("var/spool/cost-tags"),
                root.path().join("run/cost-tags"),
                setup.settings_tail,
            ),
        )
        .unwrap();
        let mut env: Vec<(String, String)> = env_for(&proxy.endpoint());
        env.extend(imds.env());
        env.push(("COST_TAGS_CONFIG".into(), settings.display().to_string()));
        let env_file: String = env
            .iter()
            .map(|(k, v)| format!("export {k}={}\n", shell_quote(v)))
            .collect();
        std::fs::write(etc.join("cost-tags.env"), env_file).unwrap();

        let repo = super::repo();
        let install_hook = |name: &str, dir: &str| -> PathBuf {
            let text = std::fs::read_to_string(repo.join("scripts/slurm").join(name)).unwrap();
            let target = etc.join("scripts").join(dir).join(name);
            std::fs::write(&target, text.replace("/opt/slurm", &opt_slurm.display().to_string())).unwrap();
            std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o755)).unwrap();
            target
        };
        let prolog = install_hook("90_cost-tags-prolog", "prolog.d");
        let epilog = install_hook("90_cost-tags-epilog", "epilog.d");
        let lua = std::fs::read_to_string(repo.join("scripts/slurm/job_submit.lua")).unwrap();
        let mut extra_conf = Vec::new();
        let dbd = if setup.accounting {
            let dbd = SlurmDbd::start(&[("physics", &["ctalice", "ctbob", "ctcarol"])])?;
            extra_conf.extend(dbd.slurm_conf_lines());
            extra_conf.push("JobAcctGatherType=jobacct_gather/linux".into());
            Some(dbd)
        } else {
            None
        };
        if setup.wake_hook {
            let text = std::fs::read_to_string(repo.join("scripts/slurm/cost-tags-wake")).unwrap();
            assert!(text.contains(WAKE_FILE), "the wake hook no longer touches {WAKE_FILE}");
            let wake = root.path().join("run/cost-tags/wake");
            let hook = etc.join("scripts/cost-tags-wake");
            std::fs::write(&hook, text.replace(WAKE_FILE, &wake.display().to_string())).unwrap();
            std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
            extra_conf.push(format!("PrologSlurmctld={}", hook.display()));
            extra_conf.push(format!("EpilogSlurmctld={}", hook.display()));
        }

        let slurm = SlurmCluster::start(SlurmOptions {
            job_submit_lua: Some(lua),
            prolog: Some(prolog),
            epilog: Some(epilog),
            daemon_env: vec![
                (
                    "COST_TAGS_PROJECT_CHECK".into(),
                    bin.join("project-check").display().to_string(),
                ),
                ("COST_TAGS_CONFIG".into(), settings.display().to_string()),
            ],
            extra_conf,
            ..SlurmOptions::default()
        })?;
        Some(LocalCluster {
            slurm,
            _dbd: dbd,
            imds,
            proxy,
            moto,
            instance,
            opt_slurm,
            bins: bins.clone(),
            _root: root,
        })
    }

    /// The instance's cost tags, read from moto directly.
    pub fn cost_tags(&self) -> BTreeMap<String, String> {
        self.moto
            .tags(&self.instance)
            .into_iter()
            .filter(|(k, _)| k.starts_with("aws-parallelcluster-"))
            .collect()
    }

    /// Waits (bounded) until the cost tags equal `want`; returns what was last seen.
    pub fn wait_for_tags(
        &self,
        want: &BTreeMap<String, String>,
        timeout: std::time::Duration,
    ) -> BTreeMap<String, String> {
        let until = std::time::Instant::now() + timeout;
        loop {
            let got = self.cost_tags();
            if &got == want || std::time::Instant::now() > until {
                return got;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }

    /// cost-tags.toml, read by the hooks and by `cost-tags`.
    pub fn settings_path(&self) -> PathBuf {
        self.opt_slurm.join("etc/cost-tags.toml")
    }

    /// The wake file the wake hook touches (`wake` in the settings' cache_dir), with
    /// [`LocalSetup::wake_hook`].
    pub fn wake_file(&self) -> PathBuf {
        self._root.path().join("run/cost-tags/wake")
    }

    /// Where the node ledger lives.
    pub fn ledger_path(&self) -> PathBuf {
        self._root.path().join("var/spool/cost-tags/ledger.json")
    }

    /// The node ledger as JSON.
    pub fn ledger(&self) -> serde_json::Value {
        std::fs::read(self.ledger_path())
            .map(|b| serde_json::from_slice(&b).unwrap())
            .unwrap_or(serde_json::Value::Null)
    }

    /// Submits a job as `user` with sbatch `args`; Ok(job id) or Err(sbatch's stderr).
    pub fn sbatch(&self, user: &str, args: &[&str]) -> Result<u32, String> {
        let mut all = vec!["-o", "/dev/null"];
        all.extend_from_slice(args);
        let out = self.slurm.run_as(user, "sbatch", &all);
        if out.status.success() {
            Ok(super::slurm::parse_job_id(&out.stdout).expect("job id"))
        } else {
            Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
        }
    }
}

/// Tag map from pairs.
pub fn tag_map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}
