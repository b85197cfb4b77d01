//! Files the install writes, replaces, backs up and removes, each step recorded in the
//! manifest so that a later run updates only its own files and the uninstall removes
//! exactly them. Writes are atomic (a temporary file renamed over the old one) and keep
//! the owner of a file they replace; a file the install did not write is saved before it
//! is replaced, and one an administrator changed since is never removed.
//!
//! Symbolic links, one policy for every file ([`target`]): sites keep slurm.conf under
//! configuration management or on NFS and link it into /opt/slurm/etc. Renaming a new
//! file over such a link would detach the managed copy (and once gave the new file the
//! link's own mode, 0777). So a link is followed and its target edited in place, through
//! a temporary file in the target's own directory, keeping the target's owner and mode;
//! the link itself is never replaced. A link whose target is missing, is not a regular
//! file, or lies outside the tree the link is in (`/opt/slurm`, the Slurm configuration
//! directory, the unit or cron directory) is refused, naming the link and its target.
//! Nothing the install writes is group- or other-writable, whatever mode it found.

use std::fs;
use std::io::ErrorKind;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use sha2::{Digest, Sha256};

use super::manifest::{sha_and_backup, Key};
use super::Session;

/// The SHA-256 of a file's content, in lowercase hexadecimal.
pub(crate) fn sha256_file(path: &Path) -> std::io::Result<String> {
    Ok(sha256(&fs::read(path)?))
}

pub(crate) fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// The permission bits of `path` (not following a symlink).
pub(crate) fn mode_of(path: &Path) -> Option<u32> {
    fs::symlink_metadata(path).ok().map(|m| m.permissions().mode() & 0o7777)
}

/// Mode bits the install never writes: whoever could write slurm.conf, a hook or a unit
/// could run code as root on every node.
const NEVER_WRITABLE_BY: u32 = 0o022;

/// Where a write to `dest` goes (see the module's doc): `dest` itself when it is absent
/// or a regular file; the target of a symbolic link when that is an existing regular
/// file inside one of the `trees` that hold the link. Anything else is refused with a
/// message naming the link and where it points.
pub(crate) fn target(dest: &Path, trees: &[PathBuf]) -> Result<PathBuf> {
    let meta = match fs::symlink_metadata(dest) {
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(dest.to_path_buf()),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", dest.display())),
        Ok(m) => m,
    };
    if meta.is_file() {
        return Ok(dest.to_path_buf());
    }
    if !meta.file_type().is_symlink() {
        bail!("{} exists and is not a regular file", dest.display());
    }
    let points_to = fs::read_link(dest).unwrap_or_default();
    let refuse = |why: &str| {
        anyhow!(
            "{} is a symbolic link to {} {why}: refusing to write through it (replace the link by the file, or give --slurm-conf-dir the directory the file is in)",
            dest.display(),
            points_to.display()
        )
    };
    let Ok(resolved) = fs::canonicalize(dest) else {
        return Err(refuse("which does not exist"));
    };
    let link_dir = dest.parent().and_then(|d| fs::canonicalize(d).ok()).unwrap_or_default();
    let inside = trees
        .iter()
        .filter(|t| link_dir.starts_with(t))
        .any(|t| resolved.starts_with(t));
    if !inside {
        let held = trees
            .iter()
            .filter(|t| link_dir.starts_with(t))
            .min_by_key(|t| t.as_os_str().len());
        return Err(match held {
            Some(tree) => refuse(&format!("({}), outside {}", resolved.display(), tree.display())),
            None => refuse(&format!(
                "({}), outside the directories cost-tags installs into",
                resolved.display()
            )),
        });
    }
    if !fs::metadata(&resolved).is_ok_and(|m| m.is_file()) {
        return Err(refuse(&format!(
            "({}), which is not a regular file",
            resolved.display()
        )));
    }
    Ok(resolved)
}

fn exists(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok()
}

/// Whether `dest` is a regular file holding `content` with mode `mode`.
pub(crate) fn same_file(content: &[u8], dest: &Path, mode: u32) -> bool {
    match fs::symlink_metadata(dest) {
        Ok(m) if m.is_file() => m.permissions().mode() & 0o7777 == mode && fs::read(dest).is_ok_and(|c| c == content),
        _ => false,
    }
}

/// Writes `content` to `dest` (a path [`target`] returned) with mode `mode` less any
/// group or other write bit, atomically, keeping the owner of an existing `dest` (a
/// site's slurm.conf may belong to slurm).
pub(crate) fn write_atomic(dest: &Path, content: &[u8], mode: u32) -> Result<()> {
    if fs::symlink_metadata(dest).is_ok_and(|m| m.file_type().is_symlink()) {
        bail!("{} is a symbolic link: not replaced", dest.display());
    }
    let owner = fs::metadata(dest).ok().map(|m| (m.uid(), m.gid()));
    crate::state::atomic_file::replace(dest, content, mode & !NEVER_WRITABLE_BY)
        .with_context(|| format!("cannot write {}", dest.display()))?;
    if let Some((uid, gid)) = owner {
        // Best effort, as `chown --reference` was: only root may give a file away.
        let _ = std::os::unix::fs::chown(dest, Some(uid), Some(gid));
    }
    Ok(())
}

/// A copy of `from` at `to` as `cp -a` makes it: a symlink stays a symlink; a file keeps
/// its content, mode and (for root) owner. `to` is replaced atomically.
pub(crate) fn copy_exact(from: &Path, to: &Path) -> Result<()> {
    let meta = fs::symlink_metadata(from).with_context(|| format!("cannot read {}", from.display()))?;
    if meta.file_type().is_symlink() {
        let target = fs::read_link(from)?;
        let tmp = temporary_beside(to);
        let _ = fs::remove_file(&tmp);
        std::os::unix::fs::symlink(&target, &tmp).with_context(|| format!("cannot write {}", tmp.display()))?;
        return fs::rename(&tmp, to).with_context(|| format!("cannot write {}", to.display()));
    }
    let content = fs::read(from).with_context(|| format!("cannot read {}", from.display()))?;
    crate::state::atomic_file::replace(to, &content, meta.permissions().mode() & 0o7777)
        .with_context(|| format!("cannot write {}", to.display()))?;
    let _ = std::os::unix::fs::lchown(to, Some(meta.uid()), Some(meta.gid()));
    Ok(())
}

fn temporary_beside(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.cost-tags.{}", std::process::id()))
}

/// The nearest existing ancestor of `path` (or `path`) must be a writable directory:
/// checked before anything changes, so a read-only /opt/slurm fails the run cleanly.
pub(crate) fn check_dir_writable(path: &Path) -> Result<()> {
    let mut p = path;
    while !exists(p) {
        match p.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => p = parent,
            _ => {
                p = Path::new("/");
                break;
            }
        }
    }
    if !p.is_dir() {
        bail!("cannot create {}: {} is not a directory", path.display(), p.display());
    }
    if nix::unistd::access(p, nix::unistd::AccessFlags::W_OK).is_err() {
        bail!("cannot write in {} (read-only file system or permissions)", p.display());
    }
    Ok(())
}

impl Session<'_> {
    /// Where a write to `dest` goes: [`target`] within this node's trees.
    pub(crate) fn target(&self, dest: &Path) -> Result<PathBuf> {
        target(dest, &self.paths.trees())
    }
    /// Writes the manifest (or removes it once it holds nothing), only when it changed.
    pub(crate) fn save_manifest(&mut self) -> Result<()> {
        let path = self.paths.manifest.clone();
        match self.manifest.text() {
            None => match fs::remove_file(&path) {
                Err(e) if e.kind() != ErrorKind::NotFound => {
                    Err(e).with_context(|| format!("cannot remove {}", path.display()))
                }
                _ => Ok(()),
            },
            Some(text) => {
                let dir = self.paths.manifest_dir.clone();
                self.ensure_dir(&dir, 0o755, false)?;
                let path = self.target(&path)?;
                if !same_file(text.as_bytes(), &path, 0o644) {
                    write_atomic(&path, text.as_bytes(), 0o644)?;
                }
                Ok(())
            }
        }
    }

    /// Creates `dir` and its missing parents with `mode`; each one created is recorded
    /// (removed by the uninstall when empty) unless `record` is false.
    pub(crate) fn ensure_dir(&mut self, dir: &Path, mode: u32, record: bool) -> Result<()> {
        let mut missing = Vec::new();
        let mut p = dir;
        while !exists(p) {
            missing.push(p.to_path_buf());
            p = p.parent().unwrap_or(Path::new("/"));
        }
        if !p.is_dir() {
            bail!("cannot create {}: {} is not a directory", dir.display(), p.display());
        }
        for d in missing.into_iter().rev() {
            fs::create_dir(&d).with_context(|| format!("cannot create directory {}", d.display()))?;
            fs::set_permissions(&d, fs::Permissions::from_mode(mode))?;
            if record {
                self.manifest.set(Key::Dir(d), String::new());
            }
        }
        Ok(())
    }

    /// Saves `path` as it is now into the backup directory; returns the backup's name.
    pub(crate) fn back_up(&mut self, path: &Path) -> Result<String> {
        let path = &self.target(path)?;
        let backup_dir = self.paths.backup_dir.clone();
        self.ensure_dir(&backup_dir, 0o700, false)?;
        let name = self.paths.backup_name(path);
        copy_exact(path, &backup_dir.join(&name)).with_context(|| format!("cannot save {}", path.display()))?;
        Ok(name)
    }

    /// A file from the release (binaries, hooks, job_submit.lua, our slurm.conf include):
    /// always made equal to `content`. A file that was there before and is not ours is
    /// saved first, and put back by the uninstall.
    pub(crate) fn put_file(&mut self, content: &[u8], dest: &Path, mode: u32) -> Result<()> {
        let dest = &self.target(dest)?;
        let recorded = self.manifest.written(dest);
        if recorded.is_some() && same_file(content, dest, mode) {
            return Ok(());
        }
        let key = match recorded {
            Some(key) => key,
            None if exists(dest) => {
                let backup = self.back_up(dest)?;
                let key = Key::Replaced(dest.to_path_buf());
                self.manifest.set(key.clone(), format!("pending\t{backup}"));
                key
            }
            None => Key::File(dest.to_path_buf()),
        };
        let was_recorded = self.manifest.has(&key);
        write_atomic(dest, content, mode)?;
        let sha = sha256(content);
        match &key {
            Key::Replaced(_) => {
                let backup = sha_and_backup(self.manifest.get(&key).unwrap_or_default())
                    .1
                    .to_string();
                self.manifest.set(key, format!("{sha}\t{backup}"));
                self.out
                    .changed(format!("installed {} (the previous one is saved)", dest.display()));
            }
            _ => {
                self.manifest.set(key, sha);
                let verb = if was_recorded { "updated" } else { "installed" };
                self.out.changed(format!("{verb} {}", dest.display()));
            }
        }
        Ok(())
    }

    /// A settings file written only where none exists. One the install wrote and nobody
    /// changed since follows the options of the latest run; any other is left alone
    /// (returns false then).
    pub(crate) fn put_once(&mut self, content: &[u8], dest: &Path, mode: u32) -> Result<bool> {
        let dest = &self.target(dest)?;
        let key = Key::File(dest.to_path_buf());
        if exists(dest) {
            let ours = self.manifest.get(&key).map(str::to_string);
            if ours.is_some() && sha256_file(dest).ok() == ours {
                if !same_file(content, dest, mode) {
                    write_atomic(dest, content, mode)?;
                    self.manifest.set(key, sha256(content));
                    self.out.changed(format!("updated {}", dest.display()));
                }
                return Ok(true);
            }
            return Ok(false);
        }
        write_atomic(dest, content, mode)?;
        self.manifest.set(key, sha256(content));
        self.out.changed(format!("installed {}", dest.display()));
        Ok(true)
    }

    /// Removes (a `file` record) or restores (a `replaced` one) a recorded file, unless it
    /// changed since the install; returns true when it was kept for that reason.
    pub(crate) fn remove_recorded(&mut self, key: &Key) -> Result<bool> {
        let Some(value) = self.manifest.get(key).map(str::to_string) else {
            return Ok(false);
        };
        let path = key.path().to_path_buf();
        self.manifest.remove(key);
        if !exists(&path) {
            return Ok(false);
        }
        let (sha, backup) = sha_and_backup(&value);
        if sha256_file(&path).ok().as_deref() != Some(sha) {
            self.out
                .warn(format!("kept {}: it was changed since the install", path.display()));
            return Ok(true);
        }
        match key {
            Key::Replaced(_) => {
                let saved = self.paths.backup_dir.join(backup);
                copy_exact(&saved, &path).with_context(|| format!("cannot restore {}", path.display()))?;
                let _ = fs::remove_file(&saved);
                self.out.log(format!("restored the previous {}", path.display()));
            }
            _ => {
                fs::remove_file(&path).with_context(|| format!("cannot remove {}", path.display()))?;
                self.out.log(format!("removed {}", path.display()));
            }
        }
        Ok(false)
    }

    /// Removes (or restores) the recorded file `path`, counting it as a change.
    pub(crate) fn drop_recorded(&mut self, path: &Path) -> Result<()> {
        let path = &self.recorded_path(path);
        for key in [Key::File(path.to_path_buf()), Key::Replaced(path.to_path_buf())] {
            if self.manifest.has(&key) {
                self.remove_recorded(&key)?;
                self.out.count_change();
            }
        }
        Ok(())
    }

    /// Whether the install wrote `path` (a `file` or `replaced` record).
    pub(crate) fn recorded(&self, path: &Path) -> bool {
        self.manifest.written(&self.recorded_path(path)).is_some()
    }

    /// The path the manifest knows `path` by: a link's target, as the install wrote it.
    fn recorded_path(&self, path: &Path) -> PathBuf {
        self.target(path).unwrap_or_else(|_| path.to_path_buf())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::install::manifest::Manifest;
    use crate::install::paths::Paths;
    use crate::install::{Level, Progress};

    fn session<'a>(root: &Path, sink: &'a mut dyn FnMut(Level, &str)) -> Session<'a> {
        Session {
            paths: Paths::new(Some(root), None).unwrap(),
            manifest: Manifest::default(),
            out: Progress::new(sink),
            units_written: Vec::new(),
        }
    }

    #[test]
    fn a_foreign_file_is_saved_replaced_and_restored_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        let mut said = Vec::new();
        let mut sink = |_: Level, line: &str| said.push(line.to_string());
        let mut s = session(&root, &mut sink);
        let dest = root.join("opt/slurm/bin/project-check");
        fs::create_dir_all(dest.parent().unwrap()).unwrap();
        fs::write(&dest, "old\n").unwrap();
        fs::set_permissions(&dest, fs::Permissions::from_mode(0o750)).unwrap();

        s.put_file(b"new\n", &dest, 0o755).unwrap();
        assert_eq!(fs::read(&dest).unwrap(), b"new\n");
        assert_eq!(mode_of(&dest), Some(0o755));
        let key = Key::Replaced(dest.clone());
        let (sha, backup) = sha_and_backup(s.manifest.get(&key).unwrap());
        assert_eq!(
            (sha, backup),
            (sha256(b"new\n").as_str(), "opt%slurm%bin%project-check")
        );
        // Again: nothing to do, nothing said.
        s.put_file(b"new\n", &dest, 0o755).unwrap();
        assert_eq!(s.out.changes(), 1);

        assert!(!s.remove_recorded(&key).unwrap());
        assert_eq!(fs::read(&dest).unwrap(), b"old\n");
        assert_eq!(mode_of(&dest), Some(0o750));
        assert!(s.manifest.is_empty());
        drop(s);
        assert!(said[0].contains("(the previous one is saved)"), "{said:?}");
    }

    #[test]
    fn a_file_changed_since_the_install_is_kept_and_said() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        let mut said = Vec::new();
        let mut sink = |level: Level, line: &str| said.push((level, line.to_string()));
        let mut s = session(&root, &mut sink);
        let dest = root.join("opt/slurm/etc/projects_list.conf");
        fs::create_dir_all(dest.parent().unwrap()).unwrap();
        assert!(s.put_once(b"# template\n", &dest, 0o644).unwrap());
        // Ours and unedited: follows the latest run.
        assert!(s.put_once(b"# template 2\n", &dest, 0o644).unwrap());
        assert_eq!(fs::read(&dest).unwrap(), b"# template 2\n");
        fs::write(&dest, "alice = A\n").unwrap();
        assert!(
            !s.put_once(b"# template 3\n", &dest, 0o644).unwrap(),
            "an edited file is left alone"
        );
        assert!(s.remove_recorded(&Key::File(dest.clone())).unwrap());
        assert_eq!(fs::read(&dest).unwrap(), b"alice = A\n");
        drop(s);
        assert!(said
            .iter()
            .any(|(l, m)| *l == Level::Warning && m.contains("it was changed since the install")));
    }

    #[test]
    fn directories_created_are_recorded_parents_first() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        let mut sink = |_: Level, _: &str| {};
        let mut s = session(&root, &mut sink);
        let deep = root.join("etc/systemd/system");
        s.ensure_dir(&deep, 0o755, true).unwrap();
        assert_eq!(
            s.manifest.keys(),
            vec![
                Key::Dir(root.join("etc")),
                Key::Dir(root.join("etc/systemd")),
                Key::Dir(deep.clone())
            ]
        );
        assert_eq!(mode_of(&deep), Some(0o755));
        fs::write(root.join("file"), "").unwrap();
        let e = s.ensure_dir(&root.join("file/sub"), 0o755, true).unwrap_err();
        assert!(e.to_string().contains("is not a directory"), "{e}");
        assert!(target(&deep, &[])
            .unwrap_err()
            .to_string()
            .contains("not a regular file"));
    }
}
