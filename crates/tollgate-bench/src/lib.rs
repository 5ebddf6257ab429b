//! Tollgate's benchmark programs (`src/bin`), run by the scripts in
//! `scripts/`: `bench-http.sh` (`http_bench`), `bench-credits.sh`
//! (`credits_bench`) and `bench-issuer.sh` (`issuer_bench`). Each starts its
//! servers on 127.0.0.1 and drives them with `wrk`.
//!
//! This library is their method, written once: servers on one tokio worker
//! each (the scripts pin the process to core 0, `wrk` runs on core 1), and
//! every run of a configuration between two runs of the bare server with
//! the same request, its ratio taken to their mean. On a shared virtual
//! machine capacity drifts from second to second; the neighbouring bare
//! runs cancel most of that drift. Beside requests/s, each server thread's
//! CPU time per request (Linux `schedstat`), which time given to other
//! guests cannot inflate.

#![allow(clippy::unwrap_used, missing_docs)]

use std::net::SocketAddr;
use std::process::Command;

/// A running server: its address and the thread that serves it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Server {
    pub addr: SocketAddr,
    /// Linux thread id of the serving thread (`None` elsewhere).
    pub tid: Option<u32>,
}

/// The calling thread's Linux thread id.
pub fn thread_id() -> Option<u32> {
    let link = std::fs::read_link("/proc/thread-self").ok()?;
    link.file_name()?.to_str()?.parse().ok()
}

/// Nanoseconds thread `tid` has run on a CPU (`/proc/.../schedstat`):
/// exact, and blind to the time the machine gave to other guests.
fn cpu_ns(tid: Option<u32>) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/self/task/{}/schedstat", tid?)).ok()?;
    text.split_whitespace().next()?.parse().ok()
}

/// Runs `serve` on a new thread; waits until it has recorded its thread id.
pub fn spawn_server(serve: impl FnOnce() + Send + 'static) -> Option<u32> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        tx.send(thread_id()).unwrap();
        serve();
    });
    rx.recv().unwrap()
}

/// Serves what `make` builds (any service axum can serve) on its own thread
/// with a one-worker runtime; `make` runs on that runtime.
pub fn start_axum<F, Fut>(make: F) -> Server
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = axum::Router>,
{
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let tid = spawn_server(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let app = make().await;
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            axum::serve(listener, app).await.unwrap();
        });
    });
    Server { addr, tid }
}

/// What one wrk run measured: requests/s, and the server thread's CPU
/// nanoseconds per request (when the platform tells).
pub type Run = (f64, Option<f64>);

/// One wrk run against `server`, every request with `token`; pinned to
/// core 1 when `taskset` is present. Panics on any non-2xx answer.
pub fn wrk(server: Server, token: &str, seconds: u32) -> Run {
    let addr = server.addr;
    let cpu_before = cpu_ns(server.tid);
    let pinned = Command::new("taskset").arg("-V").output().is_ok();
    let mut cmd = if pinned {
        let mut c = Command::new("taskset");
        c.args(["-c", "1", "wrk"]);
        c
    } else {
        Command::new("wrk")
    };
    let out = cmd
        .args(["-t1", "-c32", &format!("-d{seconds}s"), "-H"])
        .arg(format!("Authorization: Bearer {token}"))
        .arg(format!("http://{addr}/"))
        .output()
        .expect("wrk not found: run the scripts in scripts/, which install it");
    let text = String::from_utf8_lossy(&out.stdout);
    if text.contains("Non-2xx") {
        panic!("non-2xx answers during the run:\n{text}");
    }
    let cpu = cpu_ns(server.tid)
        .zip(cpu_before)
        .map(|(after, before)| after.saturating_sub(before));
    let rps: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no Requests/sec in wrk output:\n{text}"));
    let requests: Option<f64> = text
        .lines()
        .find(|l| l.contains(" requests in "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok());
    let per_request = cpu
        .zip(requests)
        .filter(|(_, n)| *n > 0.0)
        .map(|(ns, n)| ns as f64 / n);
    (rps, per_request)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// One configuration to measure: its label, its server, the bare server
/// it is compared with, and the token every request carries (the bare
/// server gets the same request).
pub struct Config {
    pub label: String,
    pub server: Server,
    pub bare: Server,
    pub token: String,
}

/// Measures every configuration `rounds` times, each run between two runs
/// of its bare server, and prints the medians as a table.
pub fn compare(configs: &[Config], rounds: usize, seconds: u32) {
    println!("{rounds} rounds of wrk -t1 -c32 -d{seconds}s per run, each server on one worker;");
    println!("each run of a configuration sits between two runs of the bare server of the same");
    println!(
        "framework with the same request; ratio = run / mean of its neighbours; medians shown"
    );
    for c in configs {
        wrk(c.bare, &c.token, 1); // warm-up
        wrk(c.server, &c.token, 1);
    }
    let n = configs.len();
    let mut rows: Vec<[Vec<f64>; 5]> = (0..n).map(|_| Default::default()).collect();
    for _ in 0..rounds {
        // The bare run after one configuration is the bare run before the
        // next when both send the same request to the same server.
        let mut last_bare: Option<(Server, &str, Run)> = None;
        for (c, row) in configs.iter().zip(&mut rows) {
            let before = match last_bare {
                Some((b, t, r)) if b == c.bare && t == c.token => r,
                _ => wrk(c.bare, &c.token, seconds),
            };
            let (r, cpu) = wrk(c.server, &c.token, seconds);
            let after = wrk(c.bare, &c.token, seconds);
            last_bare = Some((c.bare, &c.token, after));
            let base = (before.0 + after.0) / 2.0;
            let [rps, bare_rps, ratio, cpu_req, cpu_ratio] = row;
            rps.push(r);
            bare_rps.push(base);
            ratio.push(r / base);
            if let (Some(c), Some(b0), Some(b1)) = (cpu, before.1, after.1) {
                cpu_req.push(c);
                // Bare CPU per request over this configuration's: the
                // throughput ratio a server would reach with its core to
                // itself.
                cpu_ratio.push((b0 + b1) / 2.0 / c);
            }
        }
    }
    println!(
        "{:<52} {:>8} {:>10} {:>7} {:>9} {:>7}   ratios per round",
        "configuration", "req/s", "bare req/s", "x bare", "CPU/req", "x bare"
    );
    for (c, row) in configs.iter().zip(&mut rows) {
        let [rps, bare_rps, ratio, cpu_req, cpu_ratio] = row;
        let per_round: Vec<String> = ratio.iter().map(|r| format!("{r:.2}")).collect();
        let (cpu_us, cpu_x) = if cpu_req.is_empty() {
            ("-".to_owned(), "-".to_owned())
        } else {
            (
                format!("{:.2} us", median(cpu_req) / 1000.0),
                format!("{:.2}", median(cpu_ratio)),
            )
        };
        println!(
            "{:<52} {:>8.0} {:>10.0} {:>7.2} {:>9} {:>7}   {}",
            c.label,
            median(rps),
            median(bare_rps),
            median(ratio),
            cpu_us,
            cpu_x,
            per_round.join(" ")
        );
    }
}

/// Rounds: the environment variable `name`, else `default`.
pub fn rounds(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(default)
}
