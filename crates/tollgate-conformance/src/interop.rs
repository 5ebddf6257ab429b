//! The independent implementations the interop tests run: PyJWT, Authlib
//! (a virtualenv) and node `jose`, installed by `scripts/interop-setup.sh`
//! into the workspace's `target/interop`.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// The workspace's root directory.
pub fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Where the tools are (`TOLLGATE_INTEROP_DIR`, else `target/interop`), or
/// `None` with a warning when they are missing. Missing tools fail the
/// test when `TOLLGATE_INTEROP_REQUIRED` is set (as `.ci/run` does).
///
/// # Panics
///
/// When the tools are missing and required.
pub fn tools() -> Option<PathBuf> {
    let dir = std::env::var_os("TOLLGATE_INTEROP_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target/interop"));
    if dir.join("venv/bin/python").exists() && dir.join("node/node_modules/jose").exists() {
        return Some(dir);
    }
    assert!(
        std::env::var_os("TOLLGATE_INTEROP_REQUIRED").is_none(),
        "interop tools missing in {}: run scripts/interop-setup.sh",
        dir.display()
    );
    eprintln!("warning: interop tools missing; run scripts/interop-setup.sh (test skipped)");
    None
}

/// Runs `cmd` with `lines` on its standard input; its output lines.
///
/// # Panics
///
/// When the command cannot run or fails.
pub fn lines_of(cmd: &mut Command, lines: &[String]) -> Vec<String> {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the interop tool starts");
    {
        let mut stdin = child.stdin.take().expect("stdin");
        for l in lines {
            writeln!(stdin, "{l}").expect("write to the tool");
        }
    }
    let out = child.wait_with_output().expect("the tool ends");
    assert!(out.status.success(), "{cmd:?} failed");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}
