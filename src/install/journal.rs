//! The reservation journal of committed budgets (`[budget] reservations_file`, see
//! `budget::reservations`). project-check appends to it inside slurmctld, as SlurmUser,
//! who cannot create a file in root's /var/spool/cost-tags; without the file every
//! submission under committed budgets would be decided like a stale cache. So the head
//! node's install creates it once: empty, SlurmUser's, mode 0600, never through a link.
//! An existing journal is left as it is (it holds the reservations since the last
//! refresh). The uninstall removes it while it is still empty, as any file it wrote.

use std::fs::OpenOptions;
use std::io::ErrorKind;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use anyhow::{Context, Result};

use super::files::sha256;
use super::manifest::Key;
use super::Session;
use crate::config::Settings;

/// Creates the journal `settings` name (under the install's root) for `slurm_user`,
/// when budgets are on and it does not exist yet.
pub(crate) fn ensure(s: &mut Session, settings: &Settings, slurm_user: &str) -> Result<()> {
    if !settings.budget.enabled {
        return Ok(());
    }
    let path = s.paths.under_root(&settings.budget.reservations_file.to_string_lossy());
    if std::fs::symlink_metadata(&path).is_ok() {
        return Ok(());
    }
    let dir = path.parent().unwrap_or(Path::new("/")).to_path_buf();
    s.ensure_dir(&dir, 0o755, true)?;
    let created = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&path);
    match created {
        Ok(_) => {}
        // Made in between by a submission running as root (a test cluster): it is there.
        Err(e) if e.kind() == ErrorKind::AlreadyExists => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("cannot create {}", path.display())),
    }
    s.manifest.set(Key::File(path.clone()), sha256(b""));
    match nix::unistd::User::from_name(slurm_user) {
        Ok(Some(user)) => {
            // Only root may give a file away; a test tree run as another user keeps it.
            let _ = std::os::unix::fs::chown(&path, Some(user.uid.as_raw()), Some(user.gid.as_raw()));
            s.out.changed(format!(
                "created {} for {slurm_user} (the reservation journal project-check writes)",
                path.display()
            ));
        }
        _ => s.out.warn(format!(
            "created {} but SlurmUser {slurm_user} is not in the user database: give it to the user slurmctld runs as, or committed budgets are decided like a stale cache",
            path.display()
        )),
    }
    Ok(())
}
