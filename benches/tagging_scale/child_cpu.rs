//! The CPU a child process used, split between the process itself and the programs it
//! ran and waited for (here `squeue` and `scontrol`, stand-ins written in Python and sh
//! whose cost says nothing about the real, compiled Slurm commands).
//!
//! wait4's rusage counts the child and every descendant it reaped. /proc/PID/stat of a
//! child that has exited but is not yet reaped (a zombie) still holds its own time
//! (utime, stime) apart from its reaped children's (cutime, cstime): so the child is
//! first waited for without reaping it (waitid with WNOWAIT), then its stat is read, then
//! it is reaped with wait4.

use std::process::Child;
use std::time::Duration;

/// What a child used, user + system time.
#[derive(Debug, Clone, Copy, Default)]
pub struct ChildCpu {
    /// The process itself (wait4's total less what its children used).
    pub own: Duration,
    /// The programs it ran.
    pub children: Duration,
    pub exit_code: Option<i32>,
}

/// Waits for `child` to end, reaps it, and returns its CPU time.
pub fn wait_with_cpu(child: &mut Child) -> ChildCpu {
    let pid = child.id() as libc::pid_t;
    // SAFETY: waitid only writes into the siginfo we hand it.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::waitid(libc::P_PID, pid as libc::id_t, &mut info, libc::WEXITED | libc::WNOWAIT) };
    assert_eq!(rc, 0, "waitid({pid}): {}", std::io::Error::last_os_error());
    let children = zombie_children_cpu(pid);
    let mut status = 0;
    // SAFETY: wait4 only writes into the two values we hand it.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
    assert_eq!(reaped, pid, "wait4({pid}): {}", std::io::Error::last_os_error());
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    let total = tv(ru.ru_utime) + tv(ru.ru_stime);
    ChildCpu {
        own: total.saturating_sub(children),
        children,
        exit_code: libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status)),
    }
}

/// cutime + cstime of process `pid` (fields 16 and 17 of /proc/PID/stat).
fn zombie_children_cpu(pid: libc::pid_t) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the parenthesised command name start at field 3.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<u64> = rest.split_whitespace().map(|x| x.parse().unwrap_or(0)).collect();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    let ticks = fields.get(13).copied().unwrap_or(0) + fields.get(14).copied().unwrap_or(0);
    Duration::from_millis(ticks * 1000 / hz)
}
