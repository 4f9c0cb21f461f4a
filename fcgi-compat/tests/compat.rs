//! Programs written for libfcgi (examples/compat/*.c), built unchanged against
//! include/compat/ and libfcgi_compat with `cc -Wall -Wextra -Wpedantic -Werror`, then run:
//! as FastCGI servers driven by fcgi-core's raw test client, and as CGI programs. echo.c passes
//! fcgi-core's protocol suites. Where Debian's libfcgi-dev is installed (or installable), the
//! same sources are built against it too and served the same requests: source compatibility,
//! and a side-by-side view of what libfcgi gets wrong.

#[path = "../../fcgi-core/tests/common/c_programs.rs"]
mod c_programs;
#[path = "../../fcgi-core/tests/common/mod.rs"]
mod common;

use std::os::fd::OwnedFd;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use c_programs::{body, cc, cgi, heavy, run, Library};
use common::{random_bytes, temp_dir, Address, App, Client};
use fcgi_core::protocol::header::RecordType;
use fcgi_core::protocol::params::encode_pair;
use fcgi_core::protocol::record::{encode_record, encode_stream, encode_stream_end};
use fcgi_core::protocol::{Params, ParamsLimits, ProtocolStatus, Role};

const EXAMPLES: [&str; 4] = ["echo", "threaded", "stdio", "filter"];

/// What the build step made.
struct Built {
    /// libfcgi_compat, and the programs linked against it.
    library: Library,
    /// The same programs linked against Debian's libfcgi, if it is there.
    libfcgi: Option<PathBuf>,
}

impl Built {
    fn program(&self, name: &str) -> PathBuf {
        self.library.program(name)
    }
}

/// Debian's libfcgi-dev: there, or installed now (CI machines are Debian, as root), or `None`
/// with the reason on stderr.
fn libfcgi_available() -> bool {
    let present = || Path::new("/usr/include/fcgiapp.h").exists();
    if present() {
        return true;
    }
    let installed = Command::new("apt-get")
        .args(["install", "-y", "-q", "libfcgi-dev"])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !installed || !present() {
        eprintln!("SKIPPED: libfcgi-dev is not installed and `apt-get install -y libfcgi-dev` failed");
        return false;
    }
    true
}

/// Builds the library (the profile these tests were built with) and the programs, once.
fn built() -> &'static Built {
    static BUILT: OnceLock<Built> = OnceLock::new();
    BUILT.get_or_init(|| {
        let library = Library::build("fcgi-compat", "fcgi_compat");
        let root = &library.root;
        let sources: Vec<(String, PathBuf)> = EXAMPLES
            .iter()
            .map(|name| (name.to_string(), root.join(format!("examples/compat/{name}.c"))))
            .chain([("signals".to_string(), root.join("fcgi-compat/tests/c/signals.c"))])
            .collect();
        for (name, source) in &sources {
            let mut cc = cc();
            cc.arg("-I").arg(root.join("include/compat"));
            library.link(cc, source, name);
        }
        let libfcgi = libfcgi_available().then(|| {
            let dir = library.bin.with_file_name("libfcgi");
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            for (name, source) in &sources {
                // No -I: the system's fcgiapp.h and fcgi_stdio.h.
                run(cc().arg(source).args(["-lfcgi", "-pthread", "-o"]).arg(dir.join(name)));
            }
            dir
        });
        Built { library, libfcgi }
    })
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Starts `program` the way mod_fcgid does: a listening Unix socket on fd 0.
fn start_on_fd0(program: &Path, args: &[&str]) -> App {
    let dir = temp_dir();
    let path = dir.join("fd0.sock");
    let listener = UnixListener::bind(&path).unwrap();
    let child = Command::new(program)
        .args(args)
        .stdin(Stdio::from(OwnedFd::from(listener)))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("stderr")).unwrap())
        .spawn()
        .unwrap();
    App::adopt(child, dir, Address::Unix(path))
}

/// Starts `program` with `--bind unix:PATH`.
fn start_bound(program: &Path, args: &[&str]) -> App {
    let dir = temp_dir();
    let address = Address::Unix(dir.join("app.sock"));
    App::start_at(dir, address, Command::new(program), args)
}

#[test]
fn the_library_exports_what_the_headers_declare() {
    let built = built();
    let so = built.library.profile.join("libfcgi_compat.so");
    let dynamic = text(&run(Command::new("readelf").arg("-d").arg(&so)).stdout);
    assert!(dynamic.contains("Library soname: [libfcgi_compat.so.0]"), "{dynamic}");
    assert!(built.library.profile.join("libfcgi_compat.a").exists());

    let symbols = text(&run(Command::new("nm").args(["-D", "--defined-only"]).arg(&so)).stdout);
    let mut exported: Vec<&str> = symbols
        .lines()
        .filter_map(|line| line.split_whitespace().nth(2))
        .filter(|name| name.starts_with("FCGX_") || name.starts_with("FCGI_") || *name == "_fcgi_sF")
        .collect();
    exported.sort();
    let others: Vec<&str> = symbols
        .lines()
        .filter_map(|line| line.split_whitespace().nth(2))
        .filter(|name| !name.starts_with('_') && !name.starts_with("FCG"))
        .collect();
    assert!(others.is_empty(), "exports beyond the headers: {others:?}");

    let mut declared = Vec::new();
    for header in ["fcgiapp.h", "fcgi_stdio.h"] {
        let source = std::fs::read_to_string(built.library.root.join("include/compat").join(header)).unwrap();
        for line in source.lines().filter(|l| l.starts_with("DLLAPI ")) {
            let name = match line.split_once('(') {
                Some((head, _)) => head.rsplit([' ', '*']).next().unwrap(),
                None => line.trim_end_matches("[];").rsplit(' ').next().unwrap(),
            };
            declared.push(name.to_owned());
        }
    }
    declared.sort();
    assert_eq!(exported, declared);
}

#[test]
fn the_c_structs_have_the_rust_layout() {
    let built = built();
    let mut source = String::from("#include <stddef.h>\n#include \"fcgiapp.h\"\n");
    for (i, (ty, field, value)) in fcgi_compat::types::layout().into_iter().enumerate() {
        let expr = if field.is_empty() { format!("sizeof({ty})") } else { format!("offsetof({ty}, {field})") };
        source.push_str(&format!("_Static_assert({expr} == {value}, \"{ty}.{field} ({i})\");\n"));
    }
    let file = built.library.bin.join("layout.c");
    std::fs::write(&file, source).unwrap();
    run(cc().arg("-fsyntax-only").arg("-I").arg(built.library.root.join("include/compat")).arg(&file));
}

#[test]
fn the_headers_are_valid_cpp_too() {
    let built = built();
    if Command::new("c++").arg("--version").output().is_err() {
        eprintln!("SKIPPED: no C++ compiler");
        return;
    }
    let file = built.library.bin.join("headers.cpp");
    std::fs::write(
        &file,
        "#include \"fcgi_stdio.h\"\n#include \"fastcgi.h\"\n\
         int main() { FCGX_Request r; FCGX_InitRequest(&r, 0, 0); return FCGX_IsCGI() ? 0 : 1; }\n",
    )
    .unwrap();
    run(Command::new("c++")
        .args(["-std=c++11", "-Wall", "-Wextra", "-Werror", "-fsyntax-only", "-I"])
        .arg(built.library.root.join("include/compat"))
        .arg(&file));
}

/// The tests of fcgi-core's suites that cannot apply to a program written against libfcgi's API.
const SKIPPED: [(&str, &str); 2] = [
    (
        "params_with_nul_bytes_non_utf8_bytes_and_empty_names_are_served",
        "libfcgi hands params over as `char **envp`, C strings: a name or value holding a NUL byte is cut there, \
         so /env cannot list it byte-exact",
    ),
    (
        "a_response_cut_short_by_a_failing_handler",
        "a libfcgi program has no failure to report: it finishes the request (FCGX_Finish_r)",
    ),
];

#[test]
fn echo_passes_the_fcgi_core_protocol_suites() {
    let _turn = heavy();
    built().library.pass_protocol_suites("echo", &SKIPPED, 40);
}

#[test]
fn threaded_serves_on_several_threads_at_once_and_as_cgi() {
    let built = built();
    let mut app = start_bound(&built.program("threaded"), &["--threads", "3"]);
    let start = Instant::now();
    let bodies: Vec<String> = std::thread::scope(|scope| {
        let clients: Vec<_> = (0..3)
            .map(|_| {
                let app = &app;
                scope.spawn(move || text(app.connect().get(1, "/slow?ms=600", false).body()))
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
    if let Address::Unix(path) = &app.address {
        assert!(!path.exists(), "the socket file FCGX_OpenSocket made is removed at the end");
    }

    // As CGI: one of the threads gets the request, every accept then returns -1.
    let output = cgi(&built.program("threaded"), &["--threads", "3"], &[("REQUEST_URI", "/")], b"");
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(body(&output.stdout).starts_with(b"thread "), "{}", text(&output.stdout));
}

#[test]
fn stdio_serves_fastcgi_on_fd0_and_cgi() {
    let built = built();
    let mut app = start_on_fd0(&built.program("stdio"), &[]);
    // printf, getenv and fread/fwrite over the request; the count goes on across requests.
    let first = app.connect().request_response(1, "POST", "/upper?x=1", b"hello body");
    let first_body = text(first.body());
    assert!(first_body.starts_with("request 1\nmethod=POST uri=/upper?x=1 query=x=1\n"), "{first_body}");
    assert!(first_body.ends_with("body=HELLO BODY\n"), "{first_body}");
    assert_eq!(first.stderr, b"stdio: served request 1\n", "stderr goes to FCGI_STDERR");
    let big = random_bytes(100_000, 3).iter().map(|b| b'a' + b % 26).collect::<Vec<u8>>();
    let second = app.connect().request_response(1, "POST", "/", &big);
    let expected = [b"body=".as_slice(), &big.to_ascii_uppercase(), b"\n"].concat();
    assert!(second.body().starts_with(b"request 2\n"));
    assert!(second.body().ends_with(&expected), "a 100 kB body read with fread, written with fwrite");
    // fgets line by line, and feof.
    let lines = app.connect().request_response(1, "POST", "/lines", b"one\ntwo\nthree");
    assert!(text(lines.body()).ends_with("> one\n> two\n> three3 lines, eof=1\n"), "{}", text(lines.body()));
    // exit(3) inside a request: the atexit handler still finishes it.
    let exiting = app.connect().get(1, "/exit", false);
    assert!(text(exiting.body()).ends_with("exiting\n"), "{}", text(exiting.body()));
    assert!(exiting.end.is_some());
    let status = app.wait_exit(Duration::from_secs(10)).expect("the program exits");
    assert!(status.success(), "{status:?}: {}", app.stderr());

    // As CGI: the real stdio and environment.
    let env = [("REQUEST_METHOD", "POST"), ("REQUEST_URI", "/cgi"), ("CONTENT_LENGTH", "5")];
    let output = cgi(&built.program("stdio"), &[], &env, b"abcdeTRAILING");
    assert!(output.status.success());
    assert_eq!(text(body(&output.stdout)), "request 1\nmethod=POST uri=/cgi query=\nbody=ABCDE\n");
    assert_eq!(output.stderr, b"stdio: served request 1\n");
}

/// A Filter request: `stdin`, then `data` on the DATA stream in records of `chunk` bytes.
fn filter_request(client: &mut Client, query: &str, stdin: &[u8], data: &[u8], chunk: usize) {
    client.begin(1, Role::Filter, false);
    let length = data.len().to_string();
    client.params(
        1,
        &[("REQUEST_URI", b"/filter"), ("QUERY_STRING", query.as_bytes()), ("FCGI_DATA_LENGTH", length.as_bytes())],
        65535,
    );
    let mut out = BytesMut::new();
    encode_stream(RecordType::Stdin, 1, stdin, &mut out);
    encode_stream_end(RecordType::Stdin, 1, &mut out);
    for piece in data.chunks(chunk) {
        encode_record(RecordType::Data, 1, piece, &mut out);
    }
    encode_stream_end(RecordType::Data, 1, &mut out);
    client.send(&out);
}

fn check_filter(app: &App) {
    let data: Vec<u8> = (0..200_000u32).map(|i| b"abcdefghij\n"[i as usize % 11]).collect();
    let mut client = app.connect();
    filter_request(&mut client, "", b"some stdin", &data, 30_000);
    let response = client.response(1);
    assert!(response.head().contains("X-Stdin-Bytes: 10"), "{}", response.head());
    assert!(response.head().contains("X-Data-Length: 200000"), "{}", response.head());
    assert!(response.body() == data.to_ascii_uppercase(), "the data stream, upper-cased");
    assert_eq!(response.end.unwrap().app_status, 0);

    // FCGX_StartFilterData before the end of stdin: FCGX_CALL_SEQ_ERROR.
    let mut client = app.connect();
    filter_request(&mut client, "early", b"unread stdin", b"data", 100);
    assert_eq!(text(client.response(1).body()), "early: -1 error -5\n");

    // Another role has no data stream.
    assert_eq!(app.connect().get(1, "/", false).body(), b"not a filter\n");
}

#[test]
fn filter_reads_the_data_stream_after_stdin() {
    let built = built();
    let mut app = start_bound(&built.program("filter"), &[]);
    check_filter(&app);
    let status = app.terminate();
    assert!(status.success(), "{status:?}: {}", app.stderr());
    let output = cgi(&built.program("filter"), &[], &[("REQUEST_URI", "/")], b"");
    assert!(output.status.success());
    assert_eq!(body(&output.stdout), b"not a filter\n", "a CGI request is a Responder");
}

#[test]
fn fail_accept_on_intr_and_shutdown_pending_end_the_accept_loop() {
    let built = built();
    // The program's own SIGTERM handler and FCGI_FAIL_ACCEPT_ON_INTR: accept returns -EINTR.
    let mut app = start_on_fd0(&built.program("signals"), &[]);
    app.assert_serves();
    // Once the program waits in accept again: a signal that comes while it is on its way
    // there is libfcgi's race (the handler runs, the wait begins after it), not what is tested.
    assert!(app.wait_until_blocked_in_epoll(Duration::from_secs(10)), "the program waits: {}", app.stderr());
    app.signal(libc::SIGTERM);
    let status = app.wait_exit(Duration::from_secs(10)).expect("the program exits");
    assert_eq!(status.code(), Some(3), "{}", app.stderr());
    assert!(app.stderr().contains(&format!("accept returned {} after signal 1", -libc::EINTR)), "{}", app.stderr());

    // Its handler calls FCGX_ShutdownPending: accept returns -1 once the server has stopped.
    let mut app = start_on_fd0(&built.program("signals"), &["shutdown"]);
    app.assert_serves();
    app.signal(libc::SIGTERM);
    let status = app.wait_exit(Duration::from_secs(10)).expect("the program exits");
    assert!(status.success(), "{status:?}: {}", app.stderr());
    assert!(app.stderr().contains("accept returned -1 after signal 1"), "{}", app.stderr());
}

#[test]
fn a_static_link_makes_a_lone_binary() {
    let built = built();
    let program = built.library.bin.join("echo-static");
    run(cc()
        .arg("-I")
        .arg(built.library.root.join("include/compat"))
        .arg(built.library.root.join("examples/compat/echo.c"))
        .arg(built.library.profile.join("libfcgi_compat.a"))
        .args(["-pthread", "-ldl", "-lm", "-o"])
        .arg(&program));
    let needed = text(&run(Command::new("readelf").arg("-d").arg(&program)).stdout);
    assert!(!needed.contains("libfcgi_compat"), "linked statically:\n{needed}");
    let output = cgi(&program, &[], &[("REQUEST_URI", "/hello")], b"");
    assert!(output.status.success());
    assert_eq!(body(&output.stdout), b"Hello, world!");
}

/// The first record `client` gets back within 3 s; `None` if the app closed the connection
/// or said nothing (libfcgi's answer to what it does not understand).
fn first_record(client: &mut Client) -> Option<fcgi_core::protocol::Record> {
    use std::io::Read;
    client.stream.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let mut buf = BytesMut::new();
    loop {
        if let Ok(Some(record)) = fcgi_core::protocol::Record::decode(&mut buf) {
            return Some(record);
        }
        let mut chunk = [0u8; 4096];
        match client.stream.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// GET_VALUES for FCGI_MAX_REQS, or `None` if the app gave no answer.
fn max_reqs(app: &App) -> Option<Vec<u8>> {
    let mut client = app.connect();
    let mut query = BytesMut::new();
    encode_pair(b"FCGI_MAX_REQS", b"", &mut query);
    let mut out = BytesMut::new();
    encode_record(RecordType::GetValues, 0, &query, &mut out);
    client.send(&out);
    let record = first_record(&mut client)?;
    let values = Params::decode(&record.content, ParamsLimits::default()).ok()?;
    values.get(b"FCGI_MAX_REQS").map(<[u8]>::to_vec)
}

/// Whether an unknown role gets END_REQUEST(UNKNOWN_ROLE).
fn unknown_role_answered(app: &App) -> bool {
    let mut client = app.connect();
    client.begin(1, Role::Unknown(99), false);
    first_record(&mut client).is_some_and(|record| {
        record.header.record_type == RecordType::EndRequest
            && fcgi_core::protocol::EndRequest::parse(&record.content)
                .is_ok_and(|end| end.protocol_status == ProtocolStatus::UnknownRole)
    })
}

#[test]
fn the_same_sources_build_and_serve_against_libfcgi() {
    let built = built();
    let Some(libfcgi) = &built.libfcgi else {
        return; // the reason is on stderr
    };
    let _turn = heavy();
    // echo: the contract's plain routes.
    let mut app = start_bound(&libfcgi.join("echo"), &[]);
    app.assert_serves();
    let body = random_bytes(50_000, 9);
    assert!(app.connect().request_response(1, "POST", "/echo", &body).body() == body);
    assert_eq!(app.connect().get(1, "/status/404", false).status(), 404);
    assert_eq!(app.connect().get(1, "/stderr?msg=both", false).stderr, b"echo-stderr: both\n");
    // What libfcgi gets wrong and fcgi-compat gives the same program for free.
    let theirs = (max_reqs(&app), unknown_role_answered(&app));
    drop(app);
    let app = start_bound(&built.program("echo"), &[]);
    let ours = (max_reqs(&app), unknown_role_answered(&app));
    drop(app);
    eprintln!("GET_VALUES FCGI_MAX_REQS and UNKNOWN_ROLE: libfcgi {theirs:?}, fcgi-compat {ours:?}");
    assert!(ours.0.is_some() && ours.1, "fcgi-compat answers both");

    // threaded, stdio (on fd 0, as mod_fcgid starts it) and filter.
    let app = start_bound(&libfcgi.join("threaded"), &["--threads", "2"]);
    assert!(app.connect().get(1, "/", false).body().starts_with(b"thread "));
    drop(app);
    let app = start_on_fd0(&libfcgi.join("stdio"), &[]);
    let response = app.connect().request_response(1, "POST", "/upper", b"hello body");
    assert!(text(response.body()).ends_with("body=HELLO BODY\n"), "{}", text(response.body()));
    drop(app);
    let app = start_bound(&libfcgi.join("filter"), &[]);
    check_filter(&app);
}
