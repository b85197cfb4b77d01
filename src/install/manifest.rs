//! The head node's record of what the install added or changed, read by a later run (to
//! update only its own files) and by `--uninstall` (to remove exactly those and restore
//! what it edited). One record per line, fields separated by tabs; the format is the one
//! cost-tags.sh wrote, so a cluster installed by the script is upgraded and uninstalled
//! by this code:
//!
//! ```text
//! dir      PATH                   a directory the install created
//! file     PATH  SHA256           a file the install created (SHA256: as it left it)
//! replaced PATH  SHA256  BACKUP   a file that existed and was replaced (saved in BACKUP)
//! edited   PATH  SHA256  BACKUP   a configuration file edited in place (original in BACKUP)
//! merge    PATH  KEY  ITEM        ITEM was added to the KEY=a,b list in PATH
//! line     PATH  LINE             LINE was appended to PATH
//! ```

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use super::slurm_conf::Change;

/// The first line of the manifest.
const HEADER: &str =
    "# cost-tags.sh: what the install added or changed on this cluster; read by --uninstall. Do not edit.";

/// What a record is about: its kind and the fields that identify it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Key {
    Dir(PathBuf),
    File(PathBuf),
    Replaced(PathBuf),
    Edited(PathBuf),
    Merge { file: PathBuf, key: String, item: String },
    Line { file: PathBuf, line: String },
}

impl Key {
    /// The file a record is about.
    pub(crate) fn path(&self) -> &Path {
        match self {
            Key::Dir(p) | Key::File(p) | Key::Replaced(p) | Key::Edited(p) => p,
            Key::Merge { file, .. } | Key::Line { file, .. } => file,
        }
    }

    /// The change to a configuration file this record stands for, if it is one.
    pub(crate) fn change(&self) -> Option<Change> {
        match self {
            Key::Merge { key, item, .. } => Some(Change::Merge {
                key: key.clone(),
                item: item.clone(),
            }),
            Key::Line { line, .. } => Some(Change::Line(line.clone())),
            _ => None,
        }
    }

    fn fields(&self) -> Vec<String> {
        let p = |p: &Path| p.to_string_lossy().into_owned();
        match self {
            Key::Dir(f) => vec!["dir".into(), p(f)],
            Key::File(f) => vec!["file".into(), p(f)],
            Key::Replaced(f) => vec!["replaced".into(), p(f)],
            Key::Edited(f) => vec!["edited".into(), p(f)],
            Key::Merge { file, key, item } => vec!["merge".into(), p(file), key.clone(), item.clone()],
            Key::Line { file, line } => vec!["line".into(), p(file), line.clone()],
        }
    }

    /// Splits a record into its key and the rest (the value), or `None` for an unknown
    /// kind or too few fields.
    fn parse(line: &str) -> Option<(Key, String)> {
        let f: Vec<&str> = line.split('\t').collect();
        let n = match f[0] {
            "dir" | "file" | "replaced" | "edited" => 2,
            "line" => 3,
            "merge" => 4,
            _ => return None,
        };
        if f.len() < n {
            return None;
        }
        let path = PathBuf::from(f[1]);
        let key = match f[0] {
            "dir" => Key::Dir(path),
            "file" => Key::File(path),
            "replaced" => Key::Replaced(path),
            "edited" => Key::Edited(path),
            "line" => Key::Line {
                file: path,
                line: f[2].to_string(),
            },
            _ => Key::Merge {
                file: path,
                key: f[2].to_string(),
                item: f[3].to_string(),
            },
        };
        Some((key, f[n..].join("\t")))
    }
}

/// The records, in the order they were made (the uninstall undoes them newest first).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Manifest {
    records: Vec<(Key, String)>,
}

/// The value of a `file` record: the file's SHA-256 as the install left it. For
/// `replaced` and `edited`: the SHA-256 and the backup's name, tab-separated.
pub(crate) fn sha_and_backup(value: &str) -> (&str, &str) {
    value.split_once('\t').unwrap_or((value, ""))
}

impl Manifest {
    /// Reads the manifest at `path`; none there is an empty manifest.
    pub(crate) fn load(path: &Path) -> Result<Manifest> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Manifest::default()),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        Manifest::parse(&text).with_context(|| path.display().to_string())
    }

    pub(crate) fn parse(text: &str) -> Result<Manifest> {
        let mut m = Manifest::default();
        for line in text.lines() {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((key, value)) = Key::parse(line) else {
                bail!("unreadable record: {line}");
            };
            m.set(key, value);
        }
        Ok(m)
    }

    /// The manifest's text, or `None` when it holds nothing (no file is kept then).
    pub(crate) fn text(&self) -> Option<String> {
        if self.records.is_empty() {
            return None;
        }
        let mut out = format!("{HEADER}\n");
        for (key, value) in &self.records {
            let mut fields = key.fields();
            if !value.is_empty() {
                fields.push(value.clone());
            }
            out.push_str(&fields.join("\t"));
            out.push('\n');
        }
        Some(out)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    pub(crate) fn get(&self, key: &Key) -> Option<&str> {
        self.records.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    pub(crate) fn has(&self, key: &Key) -> bool {
        self.get(key).is_some()
    }

    /// Sets a record's value; a new record goes last.
    pub(crate) fn set(&mut self, key: Key, value: String) {
        match self.records.iter_mut().find(|(k, _)| *k == key) {
            Some((_, v)) => *v = value,
            None => self.records.push((key, value)),
        }
    }

    pub(crate) fn remove(&mut self, key: &Key) {
        self.records.retain(|(k, _)| k != key);
    }

    /// The keys, oldest first (a copy, so that the caller may change the manifest while
    /// going through them).
    pub(crate) fn keys(&self) -> Vec<Key> {
        self.records.iter().map(|(k, _)| k.clone()).collect()
    }

    /// The `file` or `replaced` record of `path`, if the install wrote it.
    pub(crate) fn written(&self, path: &Path) -> Option<Key> {
        [Key::File(path.to_path_buf()), Key::Replaced(path.to_path_buf())]
            .into_iter()
            .find(|k| self.has(k))
    }

    /// The recorded changes to configuration file `path`, oldest first, with their keys.
    pub(crate) fn changes_to(&self, path: &Path) -> Vec<(Key, Change)> {
        self.records
            .iter()
            .filter(|(k, _)| k.path() == path)
            .filter_map(|(k, _)| Some((k.clone(), k.change()?)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WRITTEN_BY_THE_SCRIPT: &str =
        "# cost-tags.sh: what the install added or changed on this cluster; read by --uninstall. Do not edit.
dir\t/r/opt/slurm/etc/cost-tags
file\t/r/opt/slurm/bin/project-check\tabc
replaced\t/r/opt/slurm/etc/job_submit.lua\tdef\topt%slurm%etc%job_submit.lua
edited\t/r/opt/slurm/etc/slurm.conf\t123\topt%slurm%etc%slurm.conf
merge\t/r/opt/slurm/etc/slurm.conf\tJobSubmitPlugins\tlua
line\t/r/opt/slurm/etc/slurm.conf\tinclude cost-tags_slurm.conf
";

    #[test]
    fn a_manifest_written_by_cost_tags_sh_reads_and_writes_back_the_same() {
        let m = Manifest::parse(WRITTEN_BY_THE_SCRIPT).unwrap();
        assert_eq!(m.text().unwrap(), WRITTEN_BY_THE_SCRIPT);
        let conf = Path::new("/r/opt/slurm/etc/slurm.conf");
        let edited = m.get(&Key::Edited(conf.into())).unwrap();
        assert_eq!(sha_and_backup(edited), ("123", "opt%slurm%etc%slurm.conf"));
        assert_eq!(
            m.changes_to(conf).into_iter().map(|(_, c)| c).collect::<Vec<_>>(),
            vec![
                Change::Merge {
                    key: "JobSubmitPlugins".into(),
                    item: "lua".into()
                },
                Change::Line("include cost-tags_slurm.conf".into())
            ]
        );
        assert_eq!(
            m.written(Path::new("/r/opt/slurm/etc/job_submit.lua")),
            Some(Key::Replaced("/r/opt/slurm/etc/job_submit.lua".into()))
        );
    }

    #[test]
    fn records_keep_their_order_and_an_empty_manifest_has_no_text() {
        let mut m = Manifest::default();
        assert_eq!(m.text(), None);
        m.set(Key::File("/b".into()), "1".into());
        m.set(Key::Dir("/a".into()), String::new());
        m.set(Key::File("/b".into()), "2".into());
        assert_eq!(m.keys(), vec![Key::File("/b".into()), Key::Dir("/a".into())]);
        assert!(m.text().unwrap().ends_with("file\t/b\t2\ndir\t/a\n"));
        m.remove(&Key::File("/b".into()));
        m.remove(&Key::Dir("/a".into()));
        assert!(m.is_empty());
    }

    #[test]
    fn an_unknown_record_is_an_error_naming_it() {
        let e = Manifest::parse("file\t/a\tx\nbogus\t/b\n").unwrap_err();
        assert!(format!("{e:#}").contains("unreadable record: bogus"), "{e:#}");
        assert!(Manifest::parse("merge\t/a\tKey\n").is_err());
    }
}
