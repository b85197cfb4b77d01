//! The directories cost-tags keeps node state in (the ledger in `state_dir`, the instance
//! identity in `cache_dir`) decide which instance is tagged for whom. If anyone but root
//! could write in one, a job user could plant a symlink that makes a root hook overwrite
//! another file, or a cached identity that sends the tags to another instance. So such a
//! directory must be owned by root (or by the user running the command, for tests and
//! unprivileged tools) and writable by nobody else; anything else is refused, not fixed,
//! because fixing it would hide that someone else created it first. cost-tags.env, which
//! sets the hooks' environment, is held to the same rule (`only_root_can_write`).

use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::Path;

use anyhow::{bail, Context, Result};

/// Creates `dir` (mode 0755, parents as needed) if it is missing, then checks it.
pub(crate) fn prepare(dir: &Path) -> Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(dir)
        .with_context(|| format!("cannot create directory {}", dir.display()))?;
    check(dir)
}

/// Checks that `dir` is a directory only its owner, root or the current user, can change.
/// A symlink is followed only when root or the current user owns the link itself.
pub(crate) fn check(dir: &Path) -> Result<()> {
    let link = std::fs::symlink_metadata(dir).with_context(|| format!("cannot stat {}", dir.display()))?;
    if link.file_type().is_symlink() && !trusted_owner(link.uid()) {
        bail!(
            "{} is a symlink owned by uid {}, not by root: refusing to keep state there",
            dir.display(),
            link.uid()
        );
    }
    let meta = std::fs::metadata(dir).with_context(|| format!("cannot stat {}", dir.display()))?;
    if !meta.is_dir() {
        bail!("{} is not a directory", dir.display());
    }
    only_root_can_write(&meta).map_err(|why| anyhow::anyhow!("{}: {why}: refusing to keep state there", dir.display()))
}

/// The rule for anything a root process trusts (these directories, cost-tags.env): owned
/// by root or the current user, and writable by nobody else. The error says which part
/// fails, for the caller to put after the path.
pub(crate) fn only_root_can_write(meta: &std::fs::Metadata) -> Result<(), String> {
    if !trusted_owner(meta.uid()) {
        return Err(format!("owned by uid {}, not by root", meta.uid()));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(format!("writable by group or others (mode {:o})", meta.mode() & 0o7777));
    }
    Ok(())
}

fn trusted_owner(uid: u32) -> bool {
    uid == 0 || uid == nix::unistd::geteuid().as_raw()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn creates_a_private_directory_and_accepts_it() {
        let top = tempfile::tempdir().unwrap();
        let dir = top.path().join("a/b");
        prepare(&dir).unwrap();
        assert_eq!(std::fs::metadata(&dir).unwrap().mode() & 0o777, 0o755);
        prepare(&dir).unwrap();
    }

    #[test]
    fn a_directory_others_can_write_is_refused() {
        let top = tempfile::tempdir().unwrap();
        for mode in [0o777, 0o1777, 0o775, 0o757] {
            std::fs::set_permissions(top.path(), std::fs::Permissions::from_mode(mode)).unwrap();
            let e = check(top.path()).unwrap_err().to_string();
            assert!(e.contains("writable by group or others"), "{mode:o}: {e}");
        }
        std::fs::set_permissions(top.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        check(top.path()).unwrap();
    }

    #[test]
    fn a_file_is_not_a_directory() {
        let top = tempfile::tempdir().unwrap();
        let file = top.path().join("f");
        std::fs::write(&file, "").unwrap();
        assert!(check(&file).unwrap_err().to_string().contains("not a directory"));
    }

    /// Ownership by another user needs root to set up; the suite runs as root in CI.
    #[test]
    fn a_directory_owned_by_another_user_is_refused() {
        if !nix::unistd::geteuid().is_root() {
            assert!(std::env::var("CI").as_deref() != Ok("true"), "CI runs as root");
            eprintln!("\n!!!!!! SKIPPING: needs root to chown !!!!!!\n");
            return;
        }
        let top = tempfile::tempdir().unwrap();
        let dir = top.path().join("planted");
        std::fs::create_dir(&dir).unwrap();
        std::os::unix::fs::chown(&dir, Some(65534), Some(65534)).unwrap();
        let e = prepare(&dir).unwrap_err().to_string();
        assert!(e.contains("owned by uid 65534"), "{e}");
        let link = top.path().join("link");
        std::os::unix::fs::symlink(top.path(), &link).unwrap();
        check(&link).unwrap();
        std::os::unix::fs::lchown(&link, Some(65534), Some(65534)).unwrap();
        assert!(check(&link)
            .unwrap_err()
            .to_string()
            .contains("symlink owned by uid 65534"));
    }
}
