//! Messages for administrators: to syslog (so they reach the node's journal and any log
//! shipping) under the binary's identifier, and to stderr (which slurmd keeps in its log).

use std::ffi::CString;
use std::sync::OnceLock;

static IDENT: OnceLock<CString> = OnceLock::new();

/// Names the messages of this process (`cost-prolog`, `cost-epilog`, ...).
pub(crate) fn init(ident: &str) {
    let ident = IDENT.get_or_init(|| CString::new(ident).unwrap_or_default());
    // SAFETY: `ident` lives in a static for the rest of the process, as openlog requires.
    unsafe { libc::openlog(ident.as_ptr(), libc::LOG_PID, libc::LOG_DAEMON) };
}

pub(crate) fn info(message: &str) {
    emit(libc::LOG_INFO, message);
}

pub(crate) fn warn(message: &str) {
    emit(libc::LOG_WARNING, message);
}

pub(crate) fn error(message: &str) {
    emit(libc::LOG_ERR, message);
}

/// A warning for syslog only, from a process whose stderr is someone else's message
/// (project-check's stderr is what a refused submitter reads).
pub(crate) fn warn_to_syslog(message: &str) {
    syslog(libc::LOG_WARNING, message);
}

// Each line goes to stderr too, which slurmd keeps in its log: the one print outside cli.
#[allow(clippy::print_stderr)]
fn emit(priority: libc::c_int, message: &str) {
    let name = IDENT.get().and_then(|c| c.to_str().ok()).unwrap_or("cost-tags");
    eprintln!("{name}: {message}");
    syslog(priority, message);
}

fn syslog(priority: libc::c_int, message: &str) {
    if let Ok(text) = CString::new(message.replace('\0', " ")) {
        // SAFETY: both pointers are valid NUL-terminated strings; "%s" keeps any `%` in
        // the message from being read as a format directive.
        unsafe { libc::syslog(priority, c"%s".as_ptr(), text.as_ptr()) };
    }
}
