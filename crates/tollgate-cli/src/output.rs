//! What the commands print: lines that survive a closed pipe, dates, and
//! the reminder to reload a running server.

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::config::Config;

/// Set once standard output is closed: what follows is not written.
static CLOSED: AtomicBool = AtomicBool::new(false);

/// Writes one line to standard output. A closed pipe (`tollgate ... | head
/// -1`) stops the output quietly, never a panic, and the command still
/// ends with its own exit code (an invalid token stays 1); any other write
/// error ends the process with status 1.
pub(crate) fn line(args: std::fmt::Arguments<'_>) {
    if CLOSED.load(Ordering::Relaxed) {
        return;
    }
    let mut out = std::io::stdout().lock();
    if let Err(e) = out
        .write_fmt(args)
        .and_then(|()| out.write_all(b"\n"))
        .and_then(|()| out.flush())
    {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            CLOSED.store(true, Ordering::Relaxed);
            return;
        }
        eprintln!("error: cannot write to standard output: {e}");
        std::process::exit(1);
    }
}

/// `println!` through [`line`].
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::output::line(format_args!($($arg)*))
    };
}
pub(crate) use outln;

/// Seconds since the epoch as an RFC 3339 UTC date.
pub(crate) fn date(secs: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| secs.to_string())
}

/// The file `serve` writes its process id to while it runs.
pub(crate) fn pid_file(config: &Config) -> PathBuf {
    config.data_dir.join("tollgate.pid")
}

/// The pid of the `tollgate serve` running on this data directory, if its
/// pid file names a live process.
pub(crate) fn server_pid(config: &Config) -> Option<u32> {
    let pid: u32 = std::fs::read_to_string(pid_file(config))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    #[cfg(target_os = "linux")]
    if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
        return None;
    }
    Some(pid)
}

/// How a change to the data directory reaches a running server.
pub(crate) fn reload_hint(config: &Config) -> String {
    match server_pid(config) {
        Some(pid) => {
            format!("a running `tollgate serve` (pid {pid}) applies it on `kill -HUP {pid}`")
        }
        None => "a running `tollgate serve` applies it on SIGHUP (`kill -HUP <pid>`; \
                 `serve` prints its pid and writes it to tollgate.pid in the data directory), \
                 a stopped one at its next start"
            .to_owned(),
    }
}
