//! SIGKILL durability: a child process (this test binary, re-executed)
//! consumes concurrently and prints a line for each acknowledged
//! consumption; the parent kills it mid-flight, reopens the database and
//! checks that no acknowledged consumption was lost and no allowance
//! overspent.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::mpsc::RecvTimeoutError;
use std::time::{Duration, Instant};

use tollgate_core::policy::{Consumed, Consumption, CreditStore, TokenRef};
use tollgate_sqlite::SqliteStore;

/// Carries the database path to the child; without it the child test does
/// nothing.
const DB_ENV: &str = "TOLLGATE_SQLITE_SIGKILL_DB";
const ISS: &str = "https://issuer.sigkill";
/// (jti, allowance, tasks): one hot token, and small ones that run out
/// before the kill.
const TOKENS: [(&str, u64, usize); 4] = [
    ("hot", 50_000, 16),
    ("small-a", 300, 2),
    ("small-b", 500, 2),
    ("small-c", 700, 2),
];
/// Acknowledgements the parent waits for before it kills the child.
const KILL_AFTER: usize = 3_000;

fn token(jti: &str) -> TokenRef<'_> {
    TokenRef {
        issuer: ISS,
        token_id: Some(jti),
        subject: None,
        client_id: None,
        issued_at: None,
        expires_at: common::now() + 3600,
    }
}

fn allowance(jti: &str) -> u64 {
    TOKENS
        .iter()
        .find(|(j, _, _)| *j == jti)
        .map_or(0, |(_, a, _)| *a)
}

/// The child: consumes until killed, one `ok <jti>` line per
/// acknowledgement. A no-op unless started by `sigkill_loses_nothing`.
#[test]
#[ignore = "run as a child process by sigkill_loses_nothing"]
fn sigkill_child() {
    let Some(path) = std::env::var_os(DB_ENV) else {
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let store = Arc::new(SqliteStore::open(path).expect("open"));
        let mut tasks = Vec::new();
        for (jti, allowance, n) in TOKENS {
            for _ in 0..n {
                let store = store.clone();
                tasks.push(tokio::spawn(async move {
                    let c = Consumption { allowance, cost: 1 };
                    while let Consumed::Charged { .. } =
                        store.consume(token(jti), c).await.expect("consume")
                    {
                        let mut out = std::io::stdout().lock();
                        writeln!(out, "ok {jti}").expect("stdout");
                        out.flush().expect("stdout");
                    }
                }));
            }
        }
        for t in tasks {
            t.await.expect("task");
        }
        // Everything spent before the kill: wait for it anyway.
        std::thread::sleep(Duration::from_secs(60));
    });
}

/// Counts an `ok <jti>` line; libtest may print its own text before ours on
/// the first line.
fn count(line: &str, acked: &mut HashMap<String, u64>) -> usize {
    match line.rsplit_once("ok ") {
        Some((_, jti)) if allowance(jti.trim()) > 0 => {
            *acked.entry(jti.trim().to_string()).or_default() += 1;
            1
        }
        _ => 0,
    }
}

#[test]
fn sigkill_loses_nothing() {
    let dir = common::TempDir::new("tollgate-sqlite-sigkill");
    let db = dir.db();
    let exe = std::env::current_exe().expect("current_exe");
    let mut child = Command::new(exe)
        .args([
            "--exact",
            "sigkill_child",
            "--nocapture",
            "--include-ignored",
        ])
        .env(DB_ENV, &db)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn child");
    let stdout = child.stdout.take().expect("child stdout");

    // Lines arrive on a channel, so that reading has a timeout.
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });

    let mut acked: HashMap<String, u64> = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(40);
    let mut total = 0;
    while total < KILL_AFTER {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left.min(Duration::from_secs(20))) {
            Ok(line) => total += count(&line, &mut acked),
            Err(RecvTimeoutError::Timeout) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("child too slow: {total} acknowledgements");
            }
            Err(RecvTimeoutError::Disconnected) => {
                let status = child.wait().expect("wait");
                panic!("child ended early ({status}) after {total} acknowledgements");
            }
        }
    }
    child.kill().expect("SIGKILL");
    let status = child.wait().expect("wait");
    assert!(!status.success(), "the child was not killed: {status}");
    // What the child printed before it died was acknowledged too.
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(10)) {
        total += count(&line, &mut acked);
    }
    reader.join().expect("reader");
    eprintln!("killed after {total} acknowledgements: {acked:?}");

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let store = Arc::new(SqliteStore::open(&db).expect("reopen after SIGKILL"));
        for (jti, allowance, _) in TOKENS {
            let spent = store.spent(ISS, jti).await.expect("spent").unwrap_or(0);
            let acked = acked.get(jti).copied().unwrap_or(0);
            eprintln!("{jti}: {acked} acknowledged, {spent} on disk");
            assert!(
                spent >= acked,
                "{jti}: {acked} acknowledged, {spent} on disk"
            );
            assert!(spent <= allowance, "{jti}: {spent} > {allowance}");

            // Spend the rest concurrently: exactly the allowance, never more.
            let granted = Arc::new(std::sync::atomic::AtomicU64::new(0));
            let mut tasks = Vec::new();
            for _ in 0..16 {
                let (store, granted) = (store.clone(), granted.clone());
                tasks.push(tokio::spawn(async move {
                    for cost in [97, 1] {
                        let c = Consumption { allowance, cost };
                        while let Consumed::Charged { .. } =
                            store.consume(token(jti), c).await.expect("consume")
                        {
                            granted.fetch_add(cost, std::sync::atomic::Ordering::Relaxed);
                        }
                    }
                }));
            }
            for t in tasks {
                t.await.expect("task");
            }
            let granted = granted.load(std::sync::atomic::Ordering::Relaxed);
            assert_eq!(spent + granted, allowance, "{jti}");
            assert_eq!(
                store.spent(ISS, jti).await.expect("spent"),
                Some(allowance),
                "{jti}"
            );
        }
    });
}
