//! The C examples are real programs: built here with `cc -Wall -Wextra -Werror` against
//! include/fcgi.h and the library, then run. echo.c must pass fcgi-core's raw-protocol suites
//! (spec, hostile, modes) as the Rust echo does, and serve a few hundred requests, hostile ones
//! included, under valgrind without a definite leak or a memory error.

#[path = "../../fcgi-core/tests/common/c_programs.rs"]
mod c_programs;
#[path = "../../fcgi-core/tests/common/mod.rs"]
mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use c_programs::{body, heavy, run, Library};
use common::{random_bytes, temp_dir, Address, App};
use fcgi_core::protocol::header::RecordType;
use fcgi_core::protocol::record::encode_record;
use fcgi_core::protocol::{ProtocolStatus, Role};

/// The C compiler, with the include directory.
fn cc(built: &Library) -> Command {
    let mut cc = c_programs::cc();
    cc.arg("-I").arg(built.root.join("include"));
    cc
}

/// Builds the library (the profile these tests were built with) and the C examples, once.
fn built() -> &'static Library {
    static BUILT: OnceLock<Library> = OnceLock::new();
    BUILT.get_or_init(|| {
        let built = Library::build("fcgi-capi", "fcgi_capi");
        for example in ["hello", "echo", "threaded"] {
            built.link(cc(&built), &built.root.join(format!("examples/c/{example}.c")), example);
        }
        built
    })
}

/// A CGI run: the environment is exactly `env`.
fn cgi(program: &Path, env: &[(&str, &str)]) -> Output {
    c_programs::cgi(program, &[], env, b"")
}

#[test]
fn the_shared_library_has_a_versioned_soname() {
    let built = built();
    let output = run(Command::new("readelf").arg("-d").arg(built.profile.join("libfcgi_capi.so")));
    let dynamic = String::from_utf8_lossy(&output.stdout);
    assert!(dynamic.contains("Library soname: [libfcgi_capi.so.0]"), "{dynamic}");
    assert!(built.profile.join("libfcgi_capi.a").exists());

    // The library exports exactly the functions the header declares, and nothing else.
    let symbols = run(Command::new("nm").args(["-D", "--defined-only"]).arg(built.profile.join("libfcgi_capi.so")));
    let mut exported: Vec<String> = String::from_utf8_lossy(&symbols.stdout)
        .lines()
        .filter_map(|line| line.split_whitespace().nth(2))
        .filter(|name| !name.starts_with('_'))
        .map(str::to_owned)
        .collect();
    exported.sort();
    let header = std::fs::read_to_string(built.root.join("include/fcgi.h")).unwrap();
    let mut declared: Vec<String> = header
        .lines()
        .filter(|line| line.contains('(') && !line.starts_with([' ', '#', '}']) && !line.starts_with("typedef"))
        .filter_map(|line| line.split('(').next()?.rsplit([' ', '*']).next())
        .filter(|name| name.starts_with("fcgi_"))
        .map(str::to_owned)
        .collect();
    declared.sort();
    assert_eq!(exported, declared);
}

#[test]
fn echo_c_passes_the_fcgi_core_protocol_suites() {
    let built = built();
    let _turn = heavy();
    let skipped = [
        (
            "prefork",
            "`processes` does not apply to the C API: it is built on Server::acceptor, whose accepting threads are \
             the program's; a C program that wants several processes forks itself",
        ),
        (
            "a_response_cut_short_by_a_failing_handler",
            "a C handler has no failure to report: it sets an app status and finishes (a Rust handler's Err and a \
             Python exception do)",
        ),
    ];
    built.pass_protocol_suites("echo", &skipped, 30);
}

#[test]
fn hello_c_serves_fastcgi_and_cgi() {
    let built = built();
    let dir = temp_dir();
    let address = Address::Unix(dir.join("hello.sock"));
    let mut app = App::start_at(dir, address, Command::new(built.program("hello")), &[]);
    for _ in 0..3 {
        app.assert_serves();
    }
    let status = app.terminate();
    assert!(status.success(), "{status:?}: {}", app.stderr());

    let output = cgi(&built.program("hello"), &[("REQUEST_URI", "/")]);
    assert!(output.status.success());
    assert_eq!(body(&output.stdout), b"Hello, world!");
}

/// Runs echo.c with `args`, makes `requests` (method, URI, body; each must get `status`), stops
/// it; its stderr.
fn echo_stderr(args: &[&str], requests: &[(&str, &str, &[u8], u16)]) -> String {
    let dir = temp_dir();
    let address = Address::Unix(dir.join("echo.sock"));
    let mut app = App::start_at(dir, address, Command::new(built().program("echo")), args);
    for (method, uri, body, status) in requests {
        assert_eq!(app.connect().request_response(1, method, uri, body).status(), *status, "{method} {uri}");
    }
    let exit = app.terminate();
    assert!(exit.success(), "{exit:?}: {}", app.stderr());
    app.stderr()
}

#[test]
fn the_log_callback_gets_the_servers_messages_and_access_records_at_their_levels() {
    let args = ["--log-callback", "TAG", "--max-body-bytes", "10", "--access-logformat", "%(m)s %(U)s %(s)s"];
    let stderr =
        echo_stderr(&args, &[("POST", "/echo", b"twenty bytes of body", 413), ("GET", "/status/404", b"", 404)]);
    // `TAG LEVEL LOGGER MESSAGE`: a warning (2) of the server's own, then info (3) access records.
    assert!(stderr.contains("TAG 2 fcgi.error refused a 20-byte body: the limit is 10\n"), "{stderr}");
    // Each request's line, in the order the requests ended, which threads may log in either order.
    assert!(stderr.contains("TAG 3 fcgi.access POST /echo 413\n"), "{stderr}");
    assert!(stderr.contains("TAG 3 fcgi.access GET /status/404 404\n"), "{stderr}");
}

#[test]
fn the_log_level_leaves_out_what_is_less_severe() {
    let args = ["--log-level", "error", "--max-body-bytes", "10"];
    let stderr = echo_stderr(&args, &[("POST", "/echo", b"twenty bytes of body", 413)]);
    assert!(!stderr.contains("refused"), "{stderr}");
}

#[test]
fn a_slow_request_is_logged_once_with_its_request_line_while_it_runs() {
    let args = ["--slow-request-timeout", "0.2", "--workers", "2"];
    let stderr = echo_stderr(&args, &[("GET", "/slow?ms=900", b"", 200), ("GET", "/hello", b"", 200)]);
    let records: Vec<&str> = stderr.lines().filter(|line| line.contains("[WARNING] slow request: ")).collect();
    assert_eq!(records.len(), 1, "{stderr}");
    let seconds: f64 = records[0]
        .split("GET /slow?ms=900 has run for ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{}", records[0]));
    assert!((0.2..0.9).contains(&seconds), "logged while it ran: {}", records[0]);
}

#[test]
fn threaded_c_serves_requests_on_several_threads_at_once() {
    let built = built();
    let dir = temp_dir();
    let address = Address::Unix(dir.join("threaded.sock"));
    let mut app = App::start_at(dir, address, Command::new(built.program("threaded")), &["--threads", "3"]);
    let start = Instant::now();
    let bodies: Vec<String> = std::thread::scope(|scope| {
        let clients: Vec<_> = (0..3)
            .map(|_| {
                let app = &app;
                scope.spawn(move || {
                    let response = app.connect().get(1, "/slow?ms=600", false);
                    String::from_utf8_lossy(response.body()).into_owned()
                })
            })
            .collect();
        clients.into_iter().map(|c| c.join().unwrap()).collect()
    });
    let elapsed = start.elapsed();
    assert!(elapsed < Duration::from_millis(1500), "3 × 600 ms took {elapsed:?}: not concurrent");
    let mut threads: Vec<&str> = bodies.iter().map(|b| b.split(" (").next().unwrap()).collect();
    threads.sort();
    threads.dedup();
    assert_eq!(threads.len(), 3, "{bodies:?}");
    let status = app.terminate();
    assert!(status.success(), "{status:?}: {}", app.stderr());
}

/// libfcgi_capi.a makes a program that needs no libfcgi_capi.so. (The installed tree, its
/// pkg-config files and programs built from them: tests/packaging/test_c_install.py.)
#[test]
fn the_static_library_builds_a_working_program() {
    let built = built();
    let fixed = built.bin.join("hello-static");
    run(cc(built)
        .arg(built.root.join("examples/c/hello.c"))
        .arg(built.profile.join("libfcgi_capi.a"))
        .args(["-lpthread", "-ldl", "-lm", "-lrt", "-lutil", "-lgcc_s"])
        .arg("-o")
        .arg(&fixed));
    let needed = run(Command::new("readelf").arg("-d").arg(&fixed));
    assert!(!String::from_utf8_lossy(&needed.stdout).contains("libfcgi_capi"), "linked statically");

    let output = cgi(&fixed, &[("REQUEST_URI", "/"), ("GATEWAY_INTERFACE", "CGI/1.1")]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(body(&output.stdout), b"Hello, world!");
}

#[test]
fn the_header_is_valid_cpp_too() {
    let built = built();
    let Ok(cxx) = Command::new("c++").arg("--version").output() else {
        eprintln!("no C++ compiler: skipped");
        return;
    };
    assert!(cxx.status.success());
    let source = built.bin.join("header-check.cpp");
    std::fs::write(
        &source,
        "#include \"fcgi.h\"\nint main() { fcgi_options *o = nullptr; return fcgi_options_new(&o) == FCGI_OK ? 0 : 1; }\n",
    )
    .unwrap();
    run(Command::new("c++")
        .args(["-std=c++11", "-Wall", "-Wextra", "-Werror", "-fsyntax-only", "-I"])
        .arg(built.root.join("include"))
        .arg(&source));
}

/// valgrind, installed on the spot where it is missing and apt-get can (CI's machines are
/// Debian, as root).
fn valgrind() -> PathBuf {
    let found = |dir: &str| Path::new(dir).join("valgrind").exists().then(|| Path::new(dir).join("valgrind"));
    if let Some(path) = ["/usr/bin", "/usr/local/bin"].into_iter().find_map(found) {
        return path;
    }
    let installed = Command::new("apt-get")
        .args(["install", "-y", "-q", "valgrind"])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .is_ok_and(|s| s.success());
    assert!(installed, "valgrind is missing and `apt-get install -y valgrind` failed");
    PathBuf::from("/usr/bin/valgrind")
}

/// Hostile inputs from the hostile suite, each followed by the app still serving.
fn hostile_round(app: &mut App) {
    // A 2 GiB pair length (CVE-2025-23016): refused with 431.
    let mut client = app.connect();
    client.begin(1, Role::Responder, false);
    let mut out = BytesMut::new();
    encode_record(RecordType::Params, 1, &[0xff, 0xff, 0xff, 0xff, 0x01, b'a', b'b'], &mut out);
    encode_record(RecordType::Params, 1, b"", &mut out);
    encode_record(RecordType::Stdin, 1, b"", &mut out);
    client.send(&out);
    assert_eq!(client.response(1).status(), 431);
    // Version 2, a truncated header, garbage.
    let mut client = app.connect();
    client.send(&[2, 1, 0, 1, 0, 8, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
    assert!(client.is_closed_by_app());
    app.connect().send(&[1, 1, 0]);
    for seed in 1..=5 {
        let mut client = app.connect();
        let mut noise = random_bytes(4096, seed);
        noise[0] = 1;
        let _ = client.stream.write_all(&noise);
        let _ = client.stream.shutdown(std::net::Shutdown::Write);
        assert!(client.is_closed_by_app());
    }
    // An unknown role, then a second request on a connection that does not multiplex.
    let mut client = app.connect();
    client.begin(1, Role::Unknown(99), false);
    assert_eq!(client.response(1).end.unwrap().protocol_status, ProtocolStatus::UnknownRole);
    client.begin(1, Role::Responder, true);
    client.begin(2, Role::Responder, true);
    assert_eq!(client.record().unwrap().header.request_id, 2);
    client.params(1, &[("REQUEST_URI", b"/hello")], 65535);
    client.stdin(1, b"");
    assert_eq!(client.response(1).body(), b"Hello, world!");
    // Abort in the middle of the body: the C side gets FCGI_ERR_ABORTED and finishes.
    let mut client = app.connect();
    client.begin(1, Role::Responder, true);
    client.params(1, &[("REQUEST_URI", b"/echo"), ("CONTENT_LENGTH", b"1000000")], 65535);
    let mut out = BytesMut::new();
    encode_record(RecordType::Stdin, 1, &[1; 5000], &mut out);
    encode_record(RecordType::AbortRequest, 1, b"", &mut out);
    client.send(&out);
    assert!(client.response(1).body().is_empty());
    // The web server vanishes in the middle of a large response.
    let mut client = app.connect();
    client.request(1, "GET", "/big?n=20000000", b"", false);
    let _ = client.record();
    drop(client);
    app.assert_serves();
}

#[test]
fn echo_c_under_valgrind_has_no_leak_and_no_memory_error() {
    let built = built();
    let valgrind = valgrind();
    let _turn = heavy();
    let dir = temp_dir();
    let log = dir.join("valgrind.log");
    let mut command = Command::new(valgrind);
    command
        .args(["--leak-check=full", "--errors-for-leak-kinds=definite", "--error-exitcode=99"])
        .arg(format!("--log-file={}", log.display()))
        .arg(built.program("echo"));
    let address = Address::Unix(dir.join("valgrind.sock"));
    let mut app = App::start_at(dir, address, command, &["--workers", "4"]);

    let mut served = 0;
    // 100 requests in series on one kept connection, bodies of every size up to 40 KB.
    let mut client = app.connect();
    for i in 0..100 {
        let body = random_bytes(i * 401, i as u64);
        client.request(1, "POST", "/echo", &body, true);
        assert!(client.response(1).body() == body, "request {i}");
        served += 1;
    }
    // Every route, each on a connection of its own.
    for uri in [
        "/hello",
        "/env",
        "/big?n=1000000",
        "/status/404",
        "/cookies",
        "/stderr?msg=vg",
        "/stats",
        "/slow?ms=5",
        "/pid",
        "/nowhere",
    ] {
        for _ in 0..5 {
            let response = app.connect().get(1, uri, false);
            assert!(response.end.is_some(), "{uri}");
            served += 1;
        }
    }
    // Four clients at once, 20 requests each.
    std::thread::scope(|scope| {
        for t in 0..4u64 {
            let app = &app;
            scope.spawn(move || {
                for i in 0..20 {
                    let body = random_bytes(1000 + i, t * 100 + i as u64);
                    let mut client = app.connect();
                    client.request(1, "POST", "/echo", &body, false);
                    assert!(client.response(1).body() == body);
                }
            });
        }
    });
    served += 80;
    for _ in 0..3 {
        hostile_round(&mut app);
    }
    assert!(served >= 200);

    let deadline = Instant::now() + Duration::from_secs(60);
    app.signal(libc::SIGTERM);
    let status = loop {
        if let Some(status) = app.child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "echo.c under valgrind did not stop after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    let report = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(status.success(), "exit {status:?} (99: valgrind found errors):\n{report}\n{}", app.stderr());
    assert!(report.contains("ERROR SUMMARY: 0 errors"), "{report}");
    assert!(report.contains("definitely lost: 0 bytes") || report.contains("All heap blocks were freed"), "{report}");
    eprintln!("valgrind, after {served} requests and 3 hostile rounds:\n{report}");
}

/// tests/c/handoff.c built with AddressSanitizer (its runtime intercepts malloc and free for
/// the whole process, so a use after free inside libfcgi_capi is caught too).
fn handoff_with_asan() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let built = built();
            let mut cc = cc(built);
            cc.args(["-fsanitize=address", "-fno-omit-frame-pointer"]);
            built.link(cc, &built.root.join("fcgi-capi/tests/c/handoff.c"), "handoff-asan");
            built.program("handoff-asan")
        })
        .clone()
}

/// The hand-off of `fcgi_options_set_multiplex`'s doc: main accepts and gives each request to a
/// thread; SIGTERM comes while the threads still write; main's accept returns FCGI_ERR_STOPPED
/// and main calls `fcgi_server_close` at once. Close must wait for the held requests rather than
/// free them under their threads (a heap-use-after-free in `fcgi_request_write`/`_finish`
/// before): every response arrives whole, every call returns FCGI_OK, the program exits 0, and
/// AddressSanitizer has nothing to say.
#[test]
fn close_waits_for_requests_held_on_other_threads_under_asan() {
    const CLIENTS: usize = 4;
    let program = handoff_with_asan();
    let _turn = heavy();
    let dir = temp_dir();
    let address = Address::Unix(dir.join("handoff.sock"));
    let mut command = Command::new(program);
    command.env("ASAN_OPTIONS", "detect_leaks=0:halt_on_error=1:exitcode=66");
    let mut app = App::start_at(dir, address, command, &["--chunks", "8", "--chunk-ms", "100"]);

    let (held, all_held) = std::sync::mpsc::channel();
    let responses = std::thread::scope(|scope| {
        let clients: Vec<_> = (0..CLIENTS)
            .map(|i| {
                let (app, held) = (&app, held.clone());
                scope.spawn(move || {
                    let body = random_bytes(50_000 + i * 7_001, 40 + i as u64);
                    let mut client = app.connect();
                    client.request(1, "POST", &format!("/handoff/{i}"), &body, false);
                    // The head comes first, flushed: the request is on its thread.
                    let head = client.record().expect("the head");
                    assert_eq!(head.header.record_type, RecordType::Stdout);
                    held.send(()).unwrap();
                    let mut rest = client.response(1);
                    rest.stdout.splice(0..0, head.content.iter().copied());
                    (body, rest)
                })
            })
            .collect();
        for _ in 0..CLIENTS {
            all_held.recv_timeout(Duration::from_secs(20)).expect("every request reaches its thread");
        }
        app.signal(libc::SIGTERM);
        clients.into_iter().map(|c| c.join().unwrap()).collect::<Vec<_>>()
    });
    let status = app.wait_exit(Duration::from_secs(20));
    let stderr = app.stderr();
    assert!(!stderr.contains("AddressSanitizer"), "{stderr}");
    assert!(status.is_some_and(|s| s.success()), "{status:?}:\n{stderr}");
    // Close came while requests were still being written on their threads (all of them, unless
    // a loaded machine spread the clients out over more than the 800 ms a response takes).
    let still_served: usize = stderr
        .split_once("closing with ")
        .and_then(|(_, rest)| rest.split(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no closing line:\n{stderr}"));
    assert!(still_served >= 1, "close came after the threads were done:\n{stderr}");
    assert!(stderr.contains(&format!("of {CLIENTS} requests still served on their threads")), "{stderr}");
    for (i, (sent, response)) in responses.iter().enumerate() {
        assert_eq!(response.status(), 200, "request {i}: {}", response.head());
        assert!(response.body() == &sent[..], "request {i}: {} bytes back of {}", response.body().len(), sent.len());
        assert_eq!(response.end.unwrap().app_status, 0, "request {i}");
    }
    eprintln!("handoff.c under AddressSanitizer:\n{stderr}");
}
