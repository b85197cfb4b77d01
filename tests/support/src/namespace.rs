//! A program run in a private mount namespace with directories or files bind-mounted over
//! system paths (util-linux `unshare --mount`, as root): how a test gives one process its
//! own /etc/resolv.conf or /opt/slurm without touching the machine's. The mounts vanish
//! with the process; `unshare` makes propagation private, so nothing leaks to the host.

use std::path::Path;
use std::process::{Command, Stdio};

/// Binds each `$1` over `$2`, then execs the rest. The paths reach sh only as positional
/// parameters: nothing is interpolated into the script.
const BIND_THEN_EXEC: &str = r#"n=$1; shift
while [ "$n" -gt 0 ]; do
    mount --bind "$1" "$2" || { echo "namespace: cannot bind $1 over $2" >&2; exit 125; }
    shift 2; n=$((n - 1))
done
exec "$@""#;

/// Whether private mount namespaces work here (root, `unshare` and `mount`, and a kernel
/// or container that allows them); skips loudly, or fails under CI=true, when not.
pub fn available() -> bool {
    let works = Command::new("unshare")
        .args(["--mount", "true"])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
        && super::process::find_program("mount").is_some();
    super::require("private mount namespaces (root, util-linux unshare)", works)
}

/// A command that runs `program` (append its arguments with `arg`) after binding each
/// `(source, target)` in order. Exit status 125: a bind failed.
pub fn command(mounts: &[(&Path, &Path)], program: &Path) -> Command {
    let mut c = Command::new("unshare");
    c.args(["--mount", "--propagation", "private", "sh", "-c", BIND_THEN_EXEC, "sh"])
        .arg(mounts.len().to_string());
    for (source, target) in mounts {
        c.arg(source).arg(target);
    }
    c.arg(program);
    c
}
