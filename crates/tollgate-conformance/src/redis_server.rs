//! A real `redis-server` for tests: started on a free loopback port in a
//! fresh temporary directory, stopped (and the directory removed) on drop.
//! Every wait is bounded: a server that does not come up fails the test.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Ports tried before giving up (a free port may be taken between the probe
/// and the server's own bind).
const START_ATTEMPTS: usize = 5;

/// How long a server may take to answer its first `PING`.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// How long one [`RedisServer::command`] may take in all.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(5);

/// A `redis-server` process owned by a test.
pub struct RedisServer {
    port: u16,
    dir: PathBuf,
    aof: bool,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts a server without persistence.
    pub fn start() -> RedisServer {
        Self::start_with(false)
    }

    /// Starts a server with the append-only file on (`appendfsync always`).
    pub fn start_with_aof() -> RedisServer {
        Self::start_with(true)
    }

    fn start_with(aof: bool) -> RedisServer {
        let dir = std::env::temp_dir().join(crate::unique("tollgate-redis"));
        std::fs::create_dir_all(&dir).expect("temporary directory");
        let mut server = RedisServer {
            port: free_port(),
            dir,
            aof,
            child: None,
        };
        let mut failures = Vec::new();
        for _ in 0..START_ATTEMPTS {
            match server.spawn() {
                Ok(()) => return server,
                Err(e) => {
                    failures.push(e);
                    server.port = free_port();
                }
            }
        }
        panic!("redis-server did not start: {failures:?}");
    }

    /// Starts the process on `self.port` and waits (bounded) until it is
    /// the one answering there.
    fn spawn(&mut self) -> Result<(), String> {
        let mut cmd = Command::new("redis-server");
        cmd.arg("--port")
            .arg(self.port.to_string())
            .arg("--bind")
            .arg("127.0.0.1")
            .arg("--dir")
            .arg(&self.dir)
            .arg("--save")
            .arg("")
            .arg("--daemonize")
            .arg("no")
            .arg("--loglevel")
            .arg("warning");
        if self.aof {
            cmd.args(["--appendonly", "yes", "--appendfsync", "always"]);
        } else {
            cmd.args(["--appendonly", "no"]);
        }
        let child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed (Debian package `redis-server`)");
        self.child = Some(child);
        let up = self.wait_until_up();
        if up.is_err() {
            self.kill();
        }
        up
    }

    /// Waits until our own process answers `PING` (not another server that
    /// took the port), or fails when it exited or the deadline passed.
    fn wait_until_up(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let child = self.child.as_mut().ok_or("no process")?;
            let pid = child.id();
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!(
                    "port {}: redis-server exited ({status})",
                    self.port
                ));
            }
            if self.command("PING").is_some_and(|r| r.starts_with("+PONG")) {
                let info = self.command("INFO server").unwrap_or_default();
                let theirs = info
                    .lines()
                    .find_map(|l| l.strip_prefix("process_id:"))
                    .and_then(|p| p.trim().parse::<u32>().ok());
                if theirs == Some(pid) {
                    return Ok(());
                }
                if theirs.is_some() {
                    return Err(format!("port {}: another server answers", self.port));
                }
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "port {}: no answer in {START_TIMEOUT:?}",
                    self.port
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `redis://127.0.0.1:PORT/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Kills the server (SIGKILL): no chance to save anything.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port and directory (with AOF,
    /// what was acknowledged is back). Clients know the port: it cannot
    /// change, so a failure here fails the test.
    pub fn restart(&mut self) {
        self.kill();
        if let Err(e) = self.spawn() {
            panic!("redis-server did not restart: {e}");
        }
    }

    /// Sends one inline command and returns the raw reply (`None` when the
    /// server cannot be reached).
    pub fn command(&self, line: &str) -> Option<String> {
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let deadline = Instant::now() + COMMAND_TIMEOUT;
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        s.write_all(format!("{line}\r\n").as_bytes()).ok()?;
        let mut out = Vec::new();
        let mut buf = [0u8; 65536];
        while Instant::now() < deadline {
            match s.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    out.extend_from_slice(&buf[..n]);
                    if complete(&out) {
                        break;
                    }
                }
                Err(_) => break,
            }
        }
        String::from_utf8(out).ok()
    }

    /// Starts `MONITOR` on its own connection: every command the server
    /// runs is recorded, from clients (`[db addr]`) and from scripts
    /// (`[db lua]`).
    pub fn monitor(&self) -> Monitor {
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let mut s = TcpStream::connect(addr).expect("connect for MONITOR");
        s.write_all(b"MONITOR\r\n").expect("MONITOR");
        let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = lines.clone();
        let reader = s.try_clone().expect("clone");
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(reader).lines() {
                let Ok(line) = line else { break };
                sink.lock().unwrap_or_else(|p| p.into_inner()).push(line);
            }
        });
        Monitor { lines, stream: s }
    }

    /// The `calls=` count of one command in `INFO commandstats` (0 if absent).
    pub fn command_calls(&self, command: &str) -> u64 {
        let info = self.command("INFO commandstats").unwrap_or_default();
        let prefix = format!("cmdstat_{command}:calls=");
        info.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .and_then(|rest| rest.split(',').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }

    /// Every command's call count from `INFO commandstats`.
    pub fn all_command_calls(&self) -> Vec<(String, u64)> {
        let info = self.command("INFO commandstats").unwrap_or_default();
        info.lines()
            .filter_map(|l| {
                let rest = l.strip_prefix("cmdstat_")?;
                let (name, stats) = rest.split_once(":calls=")?;
                Some((name.to_owned(), stats.split(',').next()?.parse().ok()?))
            })
            .collect()
    }
}

/// True when a RESP reply is whole (simple replies, or a bulk string whose
/// announced length has arrived).
fn complete(buf: &[u8]) -> bool {
    let Some(end) = buf.windows(2).position(|w| w == b"\r\n") else {
        return false;
    };
    match buf.first() {
        Some(b'$') => {
            let len: i64 = std::str::from_utf8(&buf[1..end])
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(-1);
            len < 0 || buf.len() >= end + 2 + len as usize + 2
        }
        _ => true,
    }
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("local addr").port()
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A running `MONITOR`; see [`RedisServer::monitor`].
pub struct Monitor {
    lines: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    stream: TcpStream,
}

impl Monitor {
    /// Commands seen so far that came from clients (not from scripts),
    /// lower-cased command names, until a line containing `marker` (a
    /// command the test sends to mark the end, e.g. `ECHO end`).
    pub fn client_commands_until(&self, marker: &str) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            {
                let lines = self.lines.lock().unwrap_or_else(|p| p.into_inner());
                if let Some(end) = lines.iter().position(|l| l.contains(marker)) {
                    return lines[..end]
                        .iter()
                        .filter(|l| !l.contains(" lua]"))
                        .filter_map(|l| l.split('"').nth(1))
                        .map(str::to_lowercase)
                        .collect();
                }
            }
            assert!(Instant::now() < deadline, "MONITOR never saw {marker}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Commands seen so far that scripts ran.
    pub fn script_commands(&self) -> usize {
        let lines = self.lines.lock().unwrap_or_else(|p| p.into_inner());
        lines.iter().filter(|l| l.contains(" lua]")).count()
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A port taken by another server is noticed (and `start` then moves
    /// on to a new port), never mistaken for our own server.
    #[test]
    fn a_taken_port_is_noticed() {
        let first = RedisServer::start();
        let dir = std::env::temp_dir().join(crate::unique("tollgate-redis"));
        std::fs::create_dir_all(&dir).expect("temporary directory");
        let mut second = RedisServer {
            port: first.port,
            dir,
            aof: false,
            child: None,
        };
        assert!(second.spawn().is_err());
        assert!(second.child.is_none(), "the failed process is gone");
        assert!(
            first
                .command("PING")
                .is_some_and(|r| r.starts_with("+PONG"))
        );
    }
}
