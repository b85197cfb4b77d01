//! Small helpers the daemon fixtures share: finding programs, picking a free loopback
//! port, the host name Slurm matches, what a port listens on, log files, and stopping
//! exactly the child a fixture started (by its pid, never by name).

use std::fs::{self, File, OpenOptions};
use std::net::{IpAddr, Ipv4Addr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// Finds `program` on PATH or in the sbin/bin directories (root's daemons live in
/// /usr/sbin, which a non-login PATH may lack).
pub fn find_program(program: &str) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    for d in [
        "/usr/sbin",
        "/usr/bin",
        "/sbin",
        "/bin",
        "/usr/local/sbin",
        "/usr/local/bin",
    ] {
        dirs.push(PathBuf::from(d));
    }
    dirs.into_iter().map(|d| d.join(program)).find(|p| p.is_file())
}

/// A port nothing listens on right now, on 127.0.0.1.
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().unwrap().port()
}

/// `hostname -s`: what Slurm compares `SlurmctldHost` and `NodeName` with.
pub fn short_hostname() -> String {
    let full = hostname();
    full.split('.').next().unwrap_or(&full).to_string()
}

fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: buf is valid for buf.len() bytes.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr() as *mut libc::c_char, buf.len()) };
    assert_eq!(rc, 0, "gethostname failed");
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// Makes sure the host name resolves to 127.0.0.1 first, or panics saying what to change.
/// Under `CommunicationParameters=NoInAddrAny`/`NoCtldInAddrAny`, which keep the Slurm
/// fixtures on loopback, Slurm's daemons and srun bind to the address the host name
/// resolves to; with Debian's installer default (127.0.1.1) slurmctld and slurmd still
/// work, but srun's I/O connection does not, and a test would hang rather than fail.
///
/// A fresh container or chroot often does not resolve its host name at all, and a Debian
/// installation resolves it to 127.0.1.1: in these two cases (no address, or loopback
/// addresses only) the fixture adds one line to /etc/hosts, before the others and marked
/// with [`HOSTS_MARK`], once (the next start finds it). A name that resolves to a
/// non-loopback address (a real network name, maybe a real cluster's) is left alone: the
/// panic says which line to add by hand on a machine where that is acceptable. Checked
/// once per fixture start.
pub fn require_host_name_on_127_0_0_1() {
    let name = hostname();
    let mut found = resolve_v4(&name);
    if found.first() != Some(&Ipv4Addr::LOCALHOST) && found.iter().all(|a| a.is_loopback()) {
        add_hosts_line(&name, found.is_empty());
        found = resolve_v4(&name);
    }
    assert!(
        found.first() == Some(&Ipv4Addr::LOCALHOST),
        "the host name {name:?} resolves to {found:?}, not 127.0.0.1: the Slurm fixtures bind to \
         it (they listen on loopback only) and srun needs it to be 127.0.0.1; add `127.0.0.1 {name}` \
         to /etc/hosts, before any other line for {name:?}"
    );
}

/// Ends the line the fixtures add to /etc/hosts, so that it can be found and removed.
pub const HOSTS_MARK: &str = "# added by the cost-tags test fixtures: Slurm binds to the host name";

fn resolve_v4(name: &str) -> Vec<Ipv4Addr> {
    (name, 0)
        .to_socket_addrs()
        .map(|addrs| {
            addrs
                .filter_map(|a| match a.ip() {
                    IpAddr::V4(v4) => Some(v4),
                    IpAddr::V6(_) => None,
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Puts `127.0.0.1 NAME  # HOSTS_MARK` first in /etc/hosts, once: a new file renamed over
/// the old one (its mode kept), so /etc/hosts is never seen half written. Where /etc/hosts
/// is a mount point (Docker binds it) the rename fails; then, if the name resolved to
/// nothing, the line is appended instead (one `write` in append mode). Several test
/// threads and processes may get here at once: a lock file serialises them, and the line
/// is added only if it is not there yet.
fn add_hosts_line(name: &str, unresolved: bool) {
    use std::io::Write;
    let hosts = Path::new("/etc/hosts");
    let line = format!("127.0.0.1 {name}  {HOSTS_MARK}\n");
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open("/tmp/.cost-tags-etc-hosts.lock");
    let Ok(lock) = lock else { return };
    if lock.lock().is_err() {
        return;
    }
    let old = fs::read_to_string(hosts).unwrap_or_default();
    if old.lines().any(|l| l.trim_end() == line.trim_end()) {
        return;
    }
    let tmp = Path::new("/etc/.hosts.cost-tags.tmp");
    let renamed = fs::write(tmp, format!("{line}{old}")).is_ok()
        && fs::metadata(hosts)
            .and_then(|m| fs::set_permissions(tmp, m.permissions()))
            .is_ok()
        && fs::rename(tmp, hosts).is_ok();
    let _ = fs::remove_file(tmp);
    let added = renamed
        || (unresolved
            && OpenOptions::new()
                .append(true)
                .open(hosts)
                .and_then(|mut f| {
                    f.write_all(
                        format!(
                            "{}{line}",
                            if old.ends_with('\n') || old.is_empty() {
                                ""
                            } else {
                                "\n"
                            }
                        )
                        .as_bytes(),
                    )
                })
                .is_ok());
    if added {
        let _ = writeln!(
            std::io::stderr(),
            "cost-tags tests: added `127.0.0.1 {name}` to /etc/hosts (marked \"{HOSTS_MARK}\")"
        );
    }
}

/// A log file a daemon's stdout and stderr are appended to.
pub fn append_file(path: &Path) -> File {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap_or_else(|e| panic!("open {}: {e}", path.display()))
}

/// A file's text, empty if it cannot be read (for log tails in panic messages).
pub fn read_lossy(path: &Path) -> String {
    fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

/// The last `lines` lines of `text`.
pub fn tail(text: &str, lines: usize) -> String {
    let v: Vec<&str> = text.lines().collect();
    v[v.len().saturating_sub(lines)..].join("\n")
}

/// Whether the child was started and has not exited.
pub fn alive(child: &mut Option<Child>) -> bool {
    matches!(child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
}

/// SIGTERM, wait up to `grace`, SIGKILL, reap. Never panics.
pub fn stop_child(child: &mut Option<Child>, grace: Duration) {
    let Some(mut c) = child.take() else { return };
    if let Ok(Some(_)) = c.try_wait() {
        return;
    }
    let _ = kill(Pid::from_raw(c.id() as i32), Signal::SIGTERM);
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = c.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = c.kill(); // SIGKILL to this pid only
    let _ = c.wait();
}

/// The local addresses with a TCP socket listening on `port` (IPv4, from /proc/net/tcp).
pub fn listening_addresses(port: u16) -> Vec<String> {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    let mut found: Vec<String> = table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (addr, p) = fields.get(1)?.split_once(':')?;
            // State 0A is LISTEN; the address is a little-endian hex u32.
            if fields.get(3) != Some(&"0A") || u16::from_str_radix(p, 16).ok()? != port {
                return None;
            }
            let ip = u32::from_str_radix(addr, 16).ok()?;
            Some(std::net::Ipv4Addr::from(ip.swap_bytes()).to_string())
        })
        .collect();
    found.sort();
    found.dedup();
    found
}
