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

/// How many ports [`free_port_with_bus`] probes for one whose cluster bus
/// port (`port + 10000`) is free as well.
const BUS_PROBES: usize = 50;

/// The offset of a cluster node's bus port from its client port.
const BUS_OFFSET: u16 = 10_000;

/// A `redis-server` process owned by a test.
pub struct RedisServer {
    port: u16,
    dir: PathBuf,
    aof: bool,
    /// Further `--option value` arguments, after the defaults.
    extra: Vec<String>,
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

    /// Starts a server without persistence, with `extra` arguments after
    /// the defaults (e.g. `["--cluster-enabled", "yes"]`). With
    /// `--cluster-enabled yes` the port is chosen so that the cluster bus
    /// port (`port + 10000`) is free too.
    pub fn start_with_args(extra: &[&str]) -> RedisServer {
        Self::start_inner(false, extra)
    }

    fn start_with(aof: bool) -> RedisServer {
        Self::start_inner(aof, &[])
    }

    fn start_inner(aof: bool, extra: &[&str]) -> RedisServer {
        let dir = std::env::temp_dir().join(crate::unique("tollgate-redis"));
        std::fs::create_dir_all(&dir).expect("temporary directory");
        let mut server = RedisServer {
            port: 0,
            dir,
            aof,
            extra: extra.iter().map(|&a| a.to_owned()).collect(),
            child: None,
        };
        let mut failures = Vec::new();
        for _ in 0..START_ATTEMPTS {
            server.port = server.pick_port();
            match server.spawn() {
                Ok(()) => return server,
                Err(e) => failures.push(e),
            }
        }
        panic!("redis-server did not start: {failures:?}");
    }

    /// A free port; for a cluster node, one whose bus port is free as well.
    fn pick_port(&self) -> u16 {
        let cluster = self
            .extra
            .windows(2)
            .any(|w| w[0] == "--cluster-enabled" && w[1] == "yes");
        if cluster {
            free_port_with_bus()
        } else {
            free_port()
        }
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
        cmd.args(&self.extra);
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

    /// The loopback port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The process id while running (benchmarks pin it to a core).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// False once [`kill`](Self::kill) (or a failed restart) has stopped
    /// the process. A process that died by itself still counts as
    /// running here; [`command`](Self::command) then answers `None`.
    pub fn is_running(&self) -> bool {
        self.child.is_some()
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
        let mut s = self.connect()?;
        s.write_all(format!("{line}\r\n").as_bytes()).ok()?;
        let out = read_replies(&mut s, 1, Instant::now() + COMMAND_TIMEOUT);
        String::from_utf8(out).ok()
    }

    /// Sends one command as a RESP array of bulk strings, so arguments may
    /// hold any bytes (spaces, quotes, braces, `\u{1f}`, non-UTF-8), and
    /// returns the raw reply (`None` when the server cannot be reached or
    /// the reply is not UTF-8; see [`command_reply`](Self::command_reply)
    /// for binary replies).
    pub fn command_args(&self, args: &[&[u8]]) -> Option<String> {
        let mut s = self.connect()?;
        s.write_all(&encode(args)).ok()?;
        let out = read_replies(&mut s, 1, Instant::now() + COMMAND_TIMEOUT);
        String::from_utf8(out).ok()
    }

    /// Like [`command_args`](Self::command_args), with the reply parsed
    /// (`None` when the server cannot be reached, or the reply is cut off
    /// or malformed).
    pub fn command_reply(&self, args: &[&[u8]]) -> Option<Reply> {
        self.commands(&[args])?.pop()
    }

    /// Sends several RESP commands, in order, on one connection, and
    /// returns their parsed replies (`None` when the server cannot be
    /// reached, or a reply is cut off or malformed). One connection
    /// matters for `WAIT`, which waits for the writes of its own
    /// connection: on a fresh connection it returns at once.
    pub fn commands(&self, commands: &[&[&[u8]]]) -> Option<Vec<Reply>> {
        let mut s = self.connect()?;
        let mut request = Vec::new();
        for args in commands {
            request.extend_from_slice(&encode(args));
        }
        s.write_all(&request).ok()?;
        let out = read_replies(&mut s, commands.len(), Instant::now() + COMMAND_TIMEOUT);
        let mut replies = Vec::with_capacity(commands.len());
        let mut at = 0;
        for _ in 0..commands.len() {
            match parse(&out[at..]) {
                Parsed::Done(reply, used) => {
                    replies.push(reply);
                    at += used;
                }
                Parsed::Incomplete | Parsed::Malformed => return None,
            }
        }
        Some(replies)
    }

    /// A connection with a read timeout (`None` when the server cannot be
    /// reached).
    fn connect(&self) -> Option<TcpStream> {
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let s = TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        Some(s)
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

/// One RESP2 reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// A status reply, `+OK` (without the `+`).
    Status(String),
    /// An error reply, `-MOVED 866 127.0.0.1:7001` (without the `-`).
    Error(String),
    /// An integer reply, `:1`.
    Integer(i64),
    /// A bulk string, `$5`; `None` for the null bulk string `$-1`.
    Bulk(Option<Vec<u8>>),
    /// An array, `*2`; `None` for the null array `*-1`.
    Array(Option<Vec<Reply>>),
}

/// What [`parse`] made of the start of a buffer.
enum Parsed {
    /// A whole reply and the bytes it took.
    Done(Reply, usize),
    /// More bytes are needed.
    Incomplete,
    /// Not RESP2.
    Malformed,
}

/// Parses one RESP2 reply from the start of `buf`.
fn parse(buf: &[u8]) -> Parsed {
    let Some(end) = buf.windows(2).position(|w| w == b"\r\n") else {
        return Parsed::Incomplete;
    };
    let Ok(line) = std::str::from_utf8(&buf[1..end]) else {
        return Parsed::Malformed;
    };
    let after = end + 2;
    match buf.first() {
        Some(b'+') => Parsed::Done(Reply::Status(line.to_owned()), after),
        Some(b'-') => Parsed::Done(Reply::Error(line.to_owned()), after),
        Some(b':') => match line.parse() {
            Ok(n) => Parsed::Done(Reply::Integer(n), after),
            Err(_) => Parsed::Malformed,
        },
        Some(b'$') => match line.parse::<i64>() {
            Ok(n) if n < 0 => Parsed::Done(Reply::Bulk(None), after),
            Ok(n) => {
                let Ok(n) = usize::try_from(n) else {
                    return Parsed::Malformed;
                };
                if buf.len() < after + n + 2 {
                    Parsed::Incomplete
                } else if &buf[after + n..after + n + 2] != b"\r\n" {
                    Parsed::Malformed
                } else {
                    let bytes = buf[after..after + n].to_vec();
                    Parsed::Done(Reply::Bulk(Some(bytes)), after + n + 2)
                }
            }
            Err(_) => Parsed::Malformed,
        },
        Some(b'*') => match line.parse::<i64>() {
            Ok(n) if n < 0 => Parsed::Done(Reply::Array(None), after),
            Ok(n) => {
                let mut items = Vec::new();
                let mut at = after;
                for _ in 0..n {
                    match parse(&buf[at..]) {
                        Parsed::Done(item, used) => {
                            items.push(item);
                            at += used;
                        }
                        other => return other,
                    }
                }
                Parsed::Done(Reply::Array(Some(items)), at)
            }
            Err(_) => Parsed::Malformed,
        },
        _ => Parsed::Malformed,
    }
}

/// A command as a RESP array of bulk strings.
fn encode(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Reads until `count` whole replies (or something that is not RESP) have
/// arrived, the connection ends, or the deadline passes; returns what was
/// read.
fn read_replies(s: &mut TcpStream, count: usize, deadline: Instant) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 65536];
    while Instant::now() < deadline {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                out.extend_from_slice(&buf[..n]);
                if complete(&out, count) {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    out
}

/// True when `buf` holds `count` whole replies, or something malformed
/// (more bytes would not help).
fn complete(buf: &[u8], count: usize) -> bool {
    let mut at = 0;
    for _ in 0..count {
        match parse(&buf[at..]) {
            Parsed::Done(_, used) => at += used,
            Parsed::Incomplete => return false,
            Parsed::Malformed => return true,
        }
    }
    true
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("local addr").port()
}

/// A free port whose cluster bus port (`port + 10000`) is free as well (or,
/// after [`BUS_PROBES`] misses, a free port: the server's own bind then
/// fails and the start moves on to another).
fn free_port_with_bus() -> u16 {
    for _ in 0..BUS_PROBES {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = l.local_addr().expect("local addr").port();
        let Some(bus) = port.checked_add(BUS_OFFSET) else {
            continue;
        };
        if TcpListener::bind(("127.0.0.1", bus)).is_ok() {
            return port;
        }
    }
    free_port()
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
            extra: Vec::new(),
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

    /// RESP commands carry any bytes both ways; replies made of several
    /// parts (arrays) are read whole, by the inline sender too.
    #[test]
    fn resp_commands_carry_any_bytes() {
        let server = RedisServer::start();
        let key = "a b\"{x}\u{1f}\r\n\0'".as_bytes();
        let value: &[u8] = &[0xff, 0x00, b'\r', b'\n', 0x1f];
        assert_eq!(
            server.command_args(&[b"SET", key, value]).as_deref(),
            Some("+OK\r\n")
        );
        assert_eq!(
            server.command_reply(&[b"GET", key]),
            Some(Reply::Bulk(Some(value.to_vec())))
        );
        assert_eq!(
            server.command_reply(&[b"EXISTS", key, b"absent"]),
            Some(Reply::Integer(1))
        );
        assert_eq!(
            server.command_reply(&[b"GET", b"absent"]),
            Some(Reply::Bulk(None))
        );
        assert!(matches!(
            server.command_reply(&[b"NO-SUCH-COMMAND"]),
            Some(Reply::Error(e)) if e.starts_with("ERR unknown command")
        ));
        let port = server.port().to_string();
        assert_eq!(
            server.command("CONFIG GET port"),
            Some(format!("*2\r\n$4\r\nport\r\n${}\r\n{port}\r\n", port.len()))
        );
        assert_eq!(
            server.commands(&[
                &[b"INCR", b"n"],
                &[b"INCR", b"n"],
                &[b"MGET", b"n", b"absent"]
            ]),
            Some(vec![
                Reply::Integer(1),
                Reply::Integer(2),
                Reply::Array(Some(vec![
                    Reply::Bulk(Some(b"2".to_vec())),
                    Reply::Bulk(None)
                ])),
            ])
        );
    }

    /// A reply cut anywhere is incomplete; whole, it parses to its end.
    #[test]
    fn a_cut_reply_is_incomplete() {
        let whole = b"*3\r\n$3\r\na\r\n\r\n:-7\r\n*-1\r\n";
        for cut in 0..whole.len() {
            assert!(
                matches!(parse(&whole[..cut]), Parsed::Incomplete),
                "cut at {cut}"
            );
        }
        let Parsed::Done(reply, used) = parse(whole) else {
            panic!("whole reply not parsed");
        };
        assert_eq!(used, whole.len());
        assert_eq!(
            reply,
            Reply::Array(Some(vec![
                Reply::Bulk(Some(b"a\r\n".to_vec())),
                Reply::Integer(-7),
                Reply::Array(None),
            ]))
        );
        assert!(matches!(parse(b"?what\r\n"), Parsed::Malformed));
    }
}
