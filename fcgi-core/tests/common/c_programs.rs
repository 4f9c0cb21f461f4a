//! Building and running C programs, for the tests of the C-facing crates (fcgi-capi's examples,
//! fcgi-compat's libfcgi programs); each includes this file by path.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard};

/// The flags every C program of the tests is built with.
pub const CFLAGS: [&str; 8] =
    ["-std=c11", "-D_POSIX_C_SOURCE=200809L", "-Wall", "-Wextra", "-Wpedantic", "-Werror", "-O2", "-g"];

/// The heavy tests (a whole protocol suite, valgrind) take turns: on two cores, running them
/// side by side only makes their timeouts flaky.
pub fn heavy() -> MutexGuard<'static, ()> {
    static HEAVY: Mutex<()> = Mutex::new(());
    HEAVY.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Runs `command`, which must succeed; its output.
pub fn run(command: &mut Command) -> Output {
    let output = command.output().unwrap_or_else(|e| panic!("{command:?} does not run: {e}"));
    assert!(
        output.status.success(),
        "{command:?} failed ({}):\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// The C compiler (`$CC`, else `cc`) with [`CFLAGS`].
pub fn cc() -> Command {
    let mut cc = Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into()));
    cc.args(CFLAGS);
    cc
}

/// A CGI run: the environment is exactly `env`, stdin is `stdin`.
pub fn cgi(program: &Path, args: &[&str], env: &[(&str, &str)], stdin: &[u8]) -> Output {
    let mut child = Command::new(program)
        .args(args)
        .env_clear()
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

/// The body of a CGI response: what follows the blank line after the headers.
pub fn body(stdout: &[u8]) -> &[u8] {
    let start = stdout.windows(4).position(|w| w == b"\r\n\r\n").expect("CGI headers") + 4;
    &stdout[start..]
}
