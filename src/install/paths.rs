//! Every path the installer reads or writes, in one place. ParallelCluster shares
//! /opt/slurm from the head node with every other node over NFS, which is why the
//! binaries, the hooks and the settings all live there. Under `COST_TAGS_ROOT` (the
//! tests' fake node trees) every path moves under that root.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};

/// The file cost-tags keeps its own Slurm settings in, beside slurm.conf.
pub(crate) const OUR_CONF_NAME: &str = "cost-tags_slurm.conf";

#[derive(Debug, Clone)]
pub(crate) struct Paths {
    /// `COST_TAGS_ROOT`, when set.
    pub root: Option<PathBuf>,
    pub opt: PathBuf,
    pub bin_dir: PathBuf,
    pub etc_dir: PathBuf,
    pub scripts_dir: PathBuf,
    pub prolog_d: PathBuf,
    pub epilog_d: PathBuf,
    /// Where the hooks go on a Slurm without prolog.d/epilog.d (before ParallelCluster 3.6).
    pub hook_dir: PathBuf,
    /// The manifest and the backups of what the install replaced or edited.
    pub manifest_dir: PathBuf,
    pub manifest: PathBuf,
    pub backup_dir: PathBuf,
    pub settings: PathBuf,
    pub projects: PathBuf,
    pub state_dir: PathBuf,
    pub cache_dir: PathBuf,
    pub unit_dir: PathBuf,
    pub cron_dir: PathBuf,
    pub conf_dir: PathBuf,
    pub slurm_conf: PathBuf,
    pub our_conf: PathBuf,
    pub lua: PathBuf,
}

impl Paths {
    /// The paths under `root` (`None`: /), slurm.conf in `conf_dir` (default
    /// /opt/slurm/etc; resolved like `pwd -P` when it exists).
    pub(crate) fn new(root: Option<&Path>, conf_dir: Option<&Path>) -> Result<Paths> {
        let root = match root {
            Some(r) if r.as_os_str().is_empty() => None,
            Some(r) => {
                let text = r.to_string_lossy();
                let trimmed = text.trim_end_matches('/');
                if !r.is_absolute() {
                    bail!("COST_TAGS_ROOT must be an absolute path, got '{}'", r.display());
                }
                if !r.is_dir() {
                    bail!("COST_TAGS_ROOT={} is not a directory", r.display());
                }
                if text.contains(['\t', '\n']) {
                    bail!("COST_TAGS_ROOT must not contain tabs or newlines");
                }
                (!trimmed.is_empty()).then(|| PathBuf::from(trimmed))
            }
            None => None,
        };
        let under = |p: &str| match &root {
            Some(r) => PathBuf::from(format!("{}{p}", r.display())),
            None => PathBuf::from(p),
        };
        let opt = under("/opt/slurm");
        let etc_dir = opt.join("etc");
        let scripts_dir = etc_dir.join("scripts");
        let manifest_dir = etc_dir.join("cost-tags");
        let mut conf = conf_dir.map(Path::to_path_buf).unwrap_or_else(|| etc_dir.clone());
        if conf.is_dir() {
            conf = conf.canonicalize().unwrap_or(conf);
        }
        if conf.to_string_lossy().contains(['\t', '\n']) {
            bail!("--slurm-conf-dir must not contain tabs or newlines");
        }
        Ok(Paths {
            bin_dir: opt.join("bin"),
            prolog_d: scripts_dir.join("prolog.d"),
            epilog_d: scripts_dir.join("epilog.d"),
            hook_dir: scripts_dir.join("cost-tags"),
            manifest: manifest_dir.join("manifest"),
            backup_dir: manifest_dir.join("backup"),
            settings: etc_dir.join("cost-tags.toml"),
            projects: etc_dir.join("projects_list.conf"),
            state_dir: under("/var/spool/cost-tags"),
            cache_dir: under("/run/cost-tags"),
            unit_dir: under("/etc/systemd/system"),
            cron_dir: under("/etc/cron.d"),
            slurm_conf: conf.join("slurm.conf"),
            our_conf: conf.join(OUR_CONF_NAME),
            lua: conf.join("job_submit.lua"),
            conf_dir: conf,
            root,
            opt,
            etc_dir,
            scripts_dir,
            manifest_dir,
        })
    }

    /// The trees the install writes files into: /opt/slurm, the Slurm configuration
    /// directory, the unit and the cron directories, each as the kernel resolves it. A
    /// symbolic link the install writes through must point inside the tree it is in
    /// (`files::target`).
    pub(crate) fn trees(&self) -> Vec<PathBuf> {
        [&self.opt, &self.conf_dir, &self.unit_dir, &self.cron_dir]
            .into_iter()
            .map(|d| d.canonicalize().unwrap_or_else(|_| d.clone()))
            .collect()
    }

    /// An absolute path as this node sees it: under the root when one is set.
    pub(crate) fn under_root(&self, path: &str) -> PathBuf {
        match &self.root {
            Some(r) => PathBuf::from(format!("{}{path}", r.display())),
            None => PathBuf::from(path),
        }
    }

    /// Where ParallelCluster's cfnconfig may be, newest layout first.
    pub(crate) fn cfnconfig_candidates(&self) -> Vec<PathBuf> {
        crate::parallelcluster::cfnconfig::PATHS
            .iter()
            .map(|p| self.under_root(p))
            .collect()
    }

    /// The name a file's backup gets in the backup directory: its path below the root
    /// with `/` as `%` (`opt%slurm%etc%slurm.conf`), one flat directory.
    pub(crate) fn backup_name(&self, path: &Path) -> String {
        let text = path.to_string_lossy();
        let rel = match &self.root {
            Some(r) => text.strip_prefix(&*r.to_string_lossy()).unwrap_or(&text).to_string(),
            None => text.to_string(),
        };
        rel.trim_start_matches('/').replace('/', "%")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn everything_moves_under_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        let p = Paths::new(Some(&root), None).unwrap();
        assert_eq!(p.bin_dir, root.join("opt/slurm/bin"));
        assert_eq!(p.unit_dir, root.join("etc/systemd/system"));
        assert_eq!(p.slurm_conf, root.join("opt/slurm/etc/slurm.conf"));
        assert_eq!(
            p.backup_name(&root.join("opt/slurm/etc/slurm.conf")),
            "opt%slurm%etc%slurm.conf"
        );
        let plain = Paths::new(None, None).unwrap();
        assert_eq!(plain.lua, PathBuf::from("/opt/slurm/etc/job_submit.lua"));
        assert_eq!(
            plain.backup_name(Path::new("/opt/slurm/etc/a.conf")),
            "opt%slurm%etc%a.conf"
        );
    }

    #[test]
    fn a_relative_or_missing_root_is_refused() {
        let e = Paths::new(Some(Path::new("rel")), None).unwrap_err();
        assert!(e.to_string().contains("absolute"), "{e}");
        let e = Paths::new(Some(Path::new("/nonexistent/root")), None).unwrap_err();
        assert!(e.to_string().contains("is not a directory"), "{e}");
    }
}
