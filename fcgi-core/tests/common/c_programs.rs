//! Building and running C programs, for the tests of the C-facing crates (fcgi-capi's examples,
//! fcgi-compat's libfcgi programs); each includes this file by path.

use std::io::Write;
use std::path::{Path, PathBuf};
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

/// A crate's C library, built by cargo in the profile these tests were built with, and the
/// folders the tests link programs into.
pub struct Library {
    /// The workspace.
    pub root: PathBuf,
    /// target/PROFILE: the library's `.so` and `.a` as cargo left them.
    pub profile: PathBuf,
    /// Holds the library under the name `-l` finds and under its soname (`.so.0`), which the
    /// programs ask for at run time.
    pub lib: PathBuf,
    /// The programs (empty at first).
    pub bin: PathBuf,
    name: String,
}

impl Library {
    /// Builds `package`, whose library is `lib{name}`, and makes `lib` and `bin` afresh under
    /// target/PROFILE/{package}-tests.
    pub fn build(package: &str, name: &str) -> Self {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf();
        // Tests run from target/PROFILE/deps/.
        let profile = std::env::current_exe().unwrap().parent().unwrap().parent().unwrap().to_path_buf();
        let mut cargo = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        cargo.args(["build", "-q", "-p", package]).current_dir(&root);
        if profile.file_name().is_some_and(|profile| profile == "release") {
            cargo.arg("--release");
        }
        run(&mut cargo);

        let out = profile.join(format!("{package}-tests"));
        let (lib, bin) = (out.join("lib"), out.join("bin"));
        for dir in [&lib, &bin] {
            let _ = std::fs::remove_dir_all(dir);
            std::fs::create_dir_all(dir).unwrap();
        }
        for link in [format!("lib{name}.so"), format!("lib{name}.so.0")] {
            std::os::unix::fs::symlink(profile.join(format!("lib{name}.so")), lib.join(link)).unwrap();
        }
        Self { root, profile, lib, bin, name: name.to_owned() }
    }

    /// Compiles `source` with `cc` (the flags and include folders) into `bin/{program}`,
    /// linked against the library, which it finds at run time through its rpath.
    pub fn link(&self, mut cc: Command, source: &Path, program: &str) {
        run(cc
            .arg(source)
            .arg("-L")
            .arg(&self.lib)
            .arg(format!("-Wl,-rpath,{}", self.lib.display()))
            .arg(format!("-l{}", self.name))
            .args(["-pthread", "-o"])
            .arg(self.program(program)));
    }

    /// Where program `name` is.
    pub fn program(&self, name: &str) -> PathBuf {
        self.bin.join(name)
    }

    /// Runs fcgi-core's protocol suites (spec, hostile, modes, trust) against `program`, in this
    /// profile, but for the tests in `skipped` (name, why); panics unless they all pass and at
    /// least `at_least` ran.
    pub fn pass_protocol_suites(&self, program: &str, skipped: &[(&str, &str)], at_least: usize) {
        let mut cargo = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        cargo
            .args(["test", "-q", "--no-fail-fast", "-p", "fcgi-core"])
            .args(["--test", "spec", "--test", "hostile", "--test", "modes", "--test", "trust"])
            .current_dir(&self.root)
            .env("FCGI_TEST_APP", self.program(program));
        if self.profile.file_name().is_some_and(|profile| profile == "release") {
            cargo.arg("--release");
        }
        cargo.arg("--");
        for (name, why) in skipped {
            eprintln!("skipping {name}: {why}");
            cargo.args(["--skip", name]);
        }
        let output = cargo.output().unwrap();
        let report = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
        assert!(output.status.success(), "the protocol suites failed against {program}:\n{report}");
        let passed: usize = report
            .lines()
            .filter_map(|line| line.strip_prefix("test result: ok. "))
            .filter_map(|rest| rest.split(' ').next()?.parse::<usize>().ok())
            .sum();
        assert!(passed >= at_least, "too few tests ran ({passed}):\n{report}");
        eprintln!("{passed} tests of spec, hostile and modes passed against {program}");
    }
}
