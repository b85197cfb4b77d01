//! Running a Slurm command (squeue, scontrol, sacct) the safe way: no shell, stdout and
//! stderr drained on their own threads so a chatty command cannot block on a full pipe,
//! and killed at a deadline, because a head node whose slurmctld hangs must not pile up
//! timer runs.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

/// Runs `program args` (no shell) and returns its stdout; killed at `deadline`. A non-zero
/// exit is an error carrying its stderr.
pub(crate) fn run_program(program: &Path, args: &[&str], deadline: Instant) -> Result<String> {
    let shown = format!("{} {}", program.display(), args.join(" "));
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run {shown}"))?;
    let mut stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    let out_reader = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = stdout.read_to_end(&mut b);
        b
    });
    let err_reader = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = stderr.read_to_end(&mut b);
        b
    });
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            anyhow::bail!("{shown} did not finish in time and was killed");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let out = out_reader.join().unwrap_or_default();
    let err = err_reader.join().unwrap_or_default();
    if !status.success() {
        anyhow::bail!("{shown} failed ({status}): {}", String::from_utf8_lossy(&err).trim());
    }
    String::from_utf8(out).with_context(|| format!("{shown} printed invalid UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn program_is_killed_at_the_deadline_and_failures_carry_stderr() {
        let started = Instant::now();
        let e = run_program(
            Path::new("/bin/sleep"),
            &["10"],
            Instant::now() + Duration::from_millis(200),
        )
        .unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(3));
        assert!(e.to_string().contains("killed"), "{e}");
        let e = run_program(
            Path::new("/bin/sh"),
            &["-c", "echo boom >&2; exit 3"],
            started + Duration::from_secs(5),
        )
        .unwrap_err();
        assert!(e.to_string().contains("boom"), "{e}");
        let ok = run_program(
            Path::new("/bin/echo"),
            &["a|b"],
            Instant::now() + Duration::from_secs(5),
        )
        .unwrap();
        assert_eq!(ok, "a|b\n");
    }
}
