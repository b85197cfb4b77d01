//! Replacing a small state file in one step. The node ledger, the budget cache and the
//! instance identity cache are read by other processes at any moment (a concurrent
//! prolog, project-check inside slurmctld) and must never be seen half written, nor lost
//! to a crash or a power cut: write a temporary file beside the old one, fsync it, rename
//! it over the old one, fsync the directory.
//!
//! The temporary file gets a random name and is created exclusively, never through a
//! symlink: even in a directory someone else could write (which `trusted_dir` refuses
//! anyway), a planted name cannot make a root process overwrite another file.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Replaces `path` with `bytes`, file mode `mode` whatever the umask. The directory must
/// exist. On failure the old file is untouched and no temporary file is left behind.
pub(crate) fn replace(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    replace_with(path, bytes, mode, None)
}

/// [`replace`], the new file owned by `uid`:`gid` (root rewriting another user's file,
/// which must stay that user's). The owner is set before any byte is written, on the
/// file descriptor, so no path is followed.
pub(crate) fn replace_owned(path: &Path, bytes: &[u8], mode: u32, uid: u32, gid: u32) -> std::io::Result<()> {
    replace_with(path, bytes, mode, Some((uid, gid)))
}

fn replace_with(path: &Path, bytes: &[u8], mode: u32, owner: Option<(u32, u32)>) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("state");
    let (mut f, tmp) = create_temporary(dir, name, mode)?;
    let result = (|| {
        if let Some((uid, gid)) = owner {
            let meta = f.metadata()?;
            if (meta.uid(), meta.gid()) != (uid, gid) {
                std::os::unix::fs::fchown(&f, Some(uid), Some(gid))?;
            }
        }
        f.set_permissions(std::fs::Permissions::from_mode(mode))?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// A new file `.{name}.{random}.tmp` in `dir`, created with O_EXCL|O_NOFOLLOW: it is
/// ours alone, whatever else is in the directory. A name already taken (a leftover of a
/// killed writer, or a planted one) is skipped for another.
fn create_temporary(dir: &Path, name: &str, mode: u32) -> std::io::Result<(File, PathBuf)> {
    let mut last = None;
    for _ in 0..16 {
        let tmp = dir.join(format!(".{name}.{:016x}.tmp", fastrand::u64(..)));
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .mode(mode)
            .open(&tmp)
        {
            Ok(f) => return Ok((f, tmp)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no free temporary name")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A symlink planted under any name the writer might pick is never followed: the
    /// file it points at keeps its content and mode.
    #[test]
    fn planted_symlinks_are_never_followed() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "secret").unwrap();
        std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o600)).unwrap();
        // The name the old code used, and a spray of others.
        std::os::unix::fs::symlink(
            &victim,
            dir.path().join(format!(".ledger.json.{}.tmp", std::process::id())),
        )
        .unwrap();
        for i in 0..64 {
            std::os::unix::fs::symlink(&victim, dir.path().join(format!(".ledger.json.{i:016x}.tmp"))).unwrap();
        }
        let path = dir.path().join("ledger.json");
        replace(&path, b"{}", 0o644).unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"secret");
        assert_eq!(std::fs::metadata(&victim).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::read(&path).unwrap(), b"{}");
        assert!(!std::fs::symlink_metadata(&path).unwrap().file_type().is_symlink());
    }

    #[test]
    fn replaces_whole_with_its_mode_and_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        replace(&path, b"one", 0o600).unwrap();
        replace(&path, b"two", 0o644).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o644);
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("state.json")]);
    }

    #[test]
    fn a_failed_replace_keeps_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        replace(&path, b"old", 0o644).unwrap();
        // A non-empty directory where the file should go: the rename fails.
        let blocked = dir.path().join("blocked");
        std::fs::create_dir_all(blocked.join("inner")).unwrap();
        assert!(replace(&blocked, b"new", 0o644).is_err());
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
        let mut names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        assert_eq!(names, vec![std::ffi::OsString::from("blocked"), "state.json".into()]);
    }
}
