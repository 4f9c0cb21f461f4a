//! How the app finds its listener (fd 0, LISTEN_FDS, an address, else CGI), who may connect,
//! and how it stops.

mod common;

use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use bytes::BytesMut;
use common::{app_command, random_bytes, temp_dir, Address, App};
use fcgi_core::protocol::header::RecordType;
use fcgi_core::protocol::params::encode_pair;
use fcgi_core::protocol::record::encode_record;
use fcgi_core::protocol::{Params, ParamsLimits};

fn get_values_max_reqs(app: &App) -> Vec<u8> {
    let mut client = app.connect();
    let mut query = BytesMut::new();
    encode_pair(b"FCGI_MAX_REQS", b"", &mut query);
    let mut out = BytesMut::new();
    encode_record(RecordType::GetValues, 0, &query, &mut out);
    client.send(&out);
    let values = Params::decode(&client.record().unwrap().content, ParamsLimits::default()).unwrap();
    values.get(b"FCGI_MAX_REQS").unwrap().to_vec()
}

#[test]
fn a_listening_socket_on_fd0_is_served_one_request_at_a_time() {
    let dir = temp_dir();
    let path = dir.join("fd0.sock");
    let listener = UnixListener::bind(&path).unwrap();
    let child = app_command()
        .stdin(Stdio::from(OwnedFd::from(listener)))
        .stderr(std::fs::File::create(dir.join("stderr")).unwrap())
        .spawn()
        .unwrap();
    let mut app = App::adopt(child, dir, Address::Unix(path));
    assert_eq!(get_values_max_reqs(&app), b"1", "mod_fcgid's one request at a time");
    app.assert_serves();
    let status = app.terminate();
    assert!(status.success(), "{status:?}");
}

#[test]
fn systemd_socket_activation_on_fd3() {
    let dir = temp_dir();
    let path = dir.join("systemd.sock");
    let listener = UnixListener::bind(&path).unwrap();
    let fd = listener.as_raw_fd();
    // The app command runs behind `sh`, which sets LISTEN_PID to its own pid before exec.
    let app = app_command();
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg("LISTEN_PID=$$ LISTEN_FDS=1 exec \"$0\" \"$@\"")
        .arg(app.get_program())
        .args(app.get_args())
        .stderr(std::fs::File::create(dir.join("stderr")).unwrap());
    // SAFETY: between fork and exec only dup2(2) and fcntl(2) run, both async-signal-safe; they
    // put the listener on fd 3 without the close-on-exec flag, as systemd hands it over (dup2 onto
    // itself keeps the flag, hence the fcntl).
    unsafe {
        command.pre_exec(move || {
            if fd != 3 && libc::dup2(fd, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            if libc::fcntl(3, libc::F_SETFD, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = command.spawn().unwrap();
    drop(listener);
    let mut app = App::adopt(child, dir, Address::Unix(path));
    app.assert_serves();
}

fn run_cgi(env: &[(&str, &str)], stdin: &[u8]) -> (std::process::ExitStatus, Vec<u8>, Vec<u8>) {
    // A CGI request is the environment: only PATH and HOME stay, so the app (perhaps an
    // interpreter) can start.
    let kept: Vec<(String, String)> =
        ["PATH", "HOME"].iter().filter_map(|k| Some((k.to_string(), std::env::var(k).ok()?))).collect();
    let mut child = app_command()
        .env_clear()
        .envs(kept)
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    let stdin = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&stdin);
    });
    let output = child.wait_with_output().unwrap();
    writer.join().unwrap();
    (output.status, output.stdout, output.stderr)
}

fn body_of(stdout: &[u8]) -> &[u8] {
    let start = stdout.windows(4).position(|w| w == b"\r\n\r\n").expect("CGI headers") + 4;
    &stdout[start..]
}

#[test]
fn without_a_listener_one_cgi_request_is_served() {
    let (status, stdout, _) = run_cgi(&[("REQUEST_URI", "/env"), ("GATEWAY_INTERFACE", "CGI/1.1")], b"");
    assert!(status.success());
    assert!(stdout.starts_with(b"Status: 200 OK\r\n"), "{}", String::from_utf8_lossy(&stdout));
    let body = String::from_utf8_lossy(body_of(&stdout)).into_owned();
    assert!(body.contains("GATEWAY_INTERFACE=CGI/1.1\n"), "{body}");
}

#[test]
fn cgi_reads_exactly_content_length_bytes_of_stdin() {
    let body = random_bytes(3 << 20, 11);
    let mut stdin = body.clone();
    stdin.extend_from_slice(b"TRAILING BYTES NOT PART OF THE BODY");
    let length = body.len().to_string();
    let (status, stdout, _) = run_cgi(&[("REQUEST_URI", "/echo"), ("CONTENT_LENGTH", &length)], &stdin);
    assert!(status.success());
    assert!(body_of(&stdout) == body, "CGI echo differs");
}

#[test]
fn cgi_status_and_stderr() {
    let (status, stdout, stderr) = run_cgi(&[("REQUEST_URI", "/status/404")], b"");
    assert!(status.success());
    assert!(stdout.starts_with(b"Status: 404 "));
    let (_, _, stderr_too) = run_cgi(&[("REQUEST_URI", "/stderr"), ("QUERY_STRING", "msg=cgi-line")], b"");
    assert!(stderr.is_empty());
    assert_eq!(stderr_too, b"echo-stderr: cgi-line\n");
}

#[test]
fn fcgi_force_cgi_overrides_a_listener_on_fd0() {
    let dir = temp_dir();
    let listener = UnixListener::bind(dir.join("unused.sock")).unwrap();
    let output = app_command()
        .env("FCGI_FORCE_CGI", "1")
        .env("REQUEST_URI", "/hello")
        .stdin(Stdio::from(OwnedFd::from(listener)))
        .output()
        .unwrap();
    assert!(output.status.success());
    assert_eq!(body_of(&output.stdout), b"Hello, world!");
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn start_tcp(addr: SocketAddr, allowed: &str) -> App {
    let mut command = app_command();
    command.env("FCGI_WEB_SERVER_ADDRS", allowed);
    App::start_at(temp_dir(), Address::Tcp(addr), command, &[])
}

#[test]
fn tcp_peers_outside_fcgi_web_server_addrs_are_refused() {
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let mut app = start_tcp(addr, "10.9.9.9, ::1");
    let mut client = app.connect();
    assert!(client.is_closed_by_app(), "a refused peer is closed without a word");
    assert!(app.stderr().contains("not in FCGI_WEB_SERVER_ADDRS"), "{}", app.stderr());
    drop(app);
    app = start_tcp(addr, "10.9.9.9,127.0.0.1");
    app.assert_serves();
}

#[test]
fn ipv6_loopback_with_fcgi_web_server_addrs() {
    if TcpListener::bind("[::1]:0").is_err() {
        eprintln!("no IPv6 loopback on this machine");
        return;
    }
    let addr: SocketAddr = format!("[::1]:{}", free_port()).parse().unwrap();
    let mut app = start_tcp(addr, "::1");
    app.assert_serves();
    assert!(TcpStream::connect(addr).is_ok());
}

#[test]
fn max_requests_ends_the_process_cleanly() {
    // One process: a lone process stops at max-requests (a pool's worker is replaced).
    let mut app = App::start_lone(&["--max-requests", "3"]);
    for _ in 0..3 {
        assert_eq!(app.connect().get(1, "/hello", false).body(), b"Hello, world!");
    }
    let status = app.wait_exit(Duration::from_secs(10)).expect("the app exits after 3 requests");
    assert!(status.success(), "{status:?}");
}

#[test]
fn sigusr1_sigint_and_sigterm_stop_gracefully() {
    for signal in [libc::SIGUSR1, libc::SIGINT, libc::SIGTERM] {
        let mut app = App::start(&[]);
        app.assert_serves();
        app.signal(signal);
        let status = app.wait_exit(Duration::from_secs(10)).expect("the app exits");
        assert!(status.success(), "signal {signal}: {status:?}");
        if let Address::Unix(path) = &app.address {
            assert!(!path.exists(), "the socket file is removed");
        }
    }
}

fn stats(app: &App) -> String {
    String::from_utf8_lossy(app.connect().get(1, "/stats", false).body()).into_owned()
}

#[test]
fn sighup_reloads_the_program_on_the_same_socket() {
    // One process, which re-executes itself (a Python app's default is a process per core).
    let mut app = App::start_lone(&["--workers", "2"]);
    let pid = app.child.id();
    let before: u32 = String::from_utf8_lossy(app.connect().get(1, "/pid", false).body()).trim().parse().unwrap();
    let mut in_flight = app.connect();
    in_flight.request(1, "GET", "/slow?ms=400", b"", false);
    std::thread::sleep(Duration::from_millis(100));
    app.signal(libc::SIGHUP);
    // Requests sent during the reload (as a web server sends them: at once on a new
    // connection) are served, by the old program or, from the backlog, by the new one.
    let during: Vec<_> = (0..5)
        .map(|_| {
            let mut client = app.connect();
            client.request(1, "GET", "/hello", b"", false);
            std::thread::sleep(Duration::from_millis(20));
            client
        })
        .collect();
    assert_eq!(in_flight.response(1).body(), b"slept 400\n", "the request in flight finishes");
    for mut client in during {
        assert_eq!(client.response(1).body(), b"Hello, world!");
    }
    assert!(app.child.try_wait().unwrap().is_none(), "the process lives on: {}", app.stderr());
    let after: u32 = String::from_utf8_lossy(app.connect().get(1, "/pid", false).body()).trim().parse().unwrap();
    assert_eq!((before, after), (pid, pid), "the same process, re-executed");
    assert!(app.stderr().contains("reloading"), "{}", app.stderr());
    let counters = stats(&app);
    assert!(counters.contains(" requests=") && !counters.starts_with("connections=1 "), "{counters}");
    let status = app.terminate();
    assert!(status.success(), "{status:?}");
}

/// Reloads may come at any rate: a SIGHUP while the old program drains, while it re-executes or
/// while the new one starts (a Python app's imports) is the reload under way, not the end of the
/// process. Before the fix the Python face died at the second SIGHUP 50 ms apart, the echo
/// example at the second 2 ms apart, each leaving its socket file behind.
#[test]
fn sighups_at_any_rate_leave_the_same_process_serving() {
    let mut app = App::start_lone(&[]);
    let pid = app.child.id();
    app.assert_serves();
    for gap in [Duration::from_millis(50), Duration::from_millis(2)] {
        for sent in 1..=20 {
            app.signal(libc::SIGHUP);
            std::thread::sleep(gap);
            assert!(app.child.try_wait().unwrap().is_none(), "died at SIGHUP {sent}, {gap:?} apart: {}", app.stderr());
        }
        // The listener stays open through every exec: this waits in its backlog if need be.
        let answered: u32 = String::from_utf8_lossy(app.connect().get(1, "/pid", false).body()).trim().parse().unwrap();
        assert_eq!(answered, pid, "the same process, re-executed: {}", app.stderr());
        app.assert_serves();
    }
    let status = app.terminate();
    assert!(status.success(), "{status:?}: {}", app.stderr());
    if let Address::Unix(path) = &app.address {
        assert!(!path.exists(), "the socket file is removed");
    }
}

/// The pids that answer `requests` requests from 8 clients at once: with sequential requests one
/// process may well take them all, as the kernel wakes whichever waits.
fn pids_seen(app: &App, requests: usize) -> std::collections::BTreeSet<u32> {
    std::thread::scope(|scope| {
        let clients: Vec<_> = (0..8)
            .map(|_| {
                scope.spawn(|| {
                    (0..requests.div_ceil(8))
                        .map(|_| {
                            let response = app.connect().get(1, "/pid", false);
                            String::from_utf8_lossy(response.body()).trim().parse::<u32>().expect("a pid")
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        clients.into_iter().flat_map(|client| client.join().unwrap()).collect()
    })
}

fn is_running(pid: u32) -> bool {
    // SAFETY: kill(2) with signal 0 only checks that the process exists.
    unsafe { libc::kill(pid as i32, 0) == 0 }
}

#[test]
fn a_prefork_pool_shares_the_listener_and_replaces_a_dead_worker() {
    let mut app = App::start(&["--processes", "2", "--workers", "1"]);
    let supervisor = app.child.id();
    let mut pids = pids_seen(&app, 60);
    for _ in 0..10 {
        if pids.len() >= 2 {
            break;
        }
        pids.extend(pids_seen(&app, 60));
    }
    assert_eq!(pids.len(), 2, "two worker processes answer: {pids:?}");
    assert!(!pids.contains(&supervisor), "the supervisor serves nothing itself");
    let victim = *pids.iter().next().unwrap();
    // SAFETY: kill(2) on a worker process of the app under test.
    unsafe { libc::kill(victim as i32, libc::SIGKILL) };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let replacement = loop {
        let seen = pids_seen(&app, 20);
        if let Some(new) = seen.iter().find(|pid| !pids.contains(pid)) {
            break *new;
        }
        assert!(std::time::Instant::now() < deadline, "no worker replaced {victim}");
    };
    let status = app.terminate();
    assert!(status.success(), "{status:?}: {}", app.stderr());
    for pid in pids.iter().chain([&replacement]) {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while is_running(*pid) && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(!is_running(*pid), "worker {pid} outlived its supervisor");
    }
}

/// How long four requests of 800 ms, sent at once on connections of their own, take to end.
fn four_slow_requests_take(app: &mut App) -> Duration {
    app.assert_serves();
    let started = std::time::Instant::now();
    let mut clients: Vec<_> = (0..4)
        .map(|_| {
            let mut client = app.connect();
            client.request(1, "GET", "/slow?ms=800", b"", false);
            client
        })
        .collect();
    for client in &mut clients {
        assert_eq!(client.response(1).body(), b"slept 800\n");
    }
    started.elapsed()
}

/// Only one worker listens while the others stand by (cheaper for short requests); slow
/// requests must still run side by side: four of 800 ms on four workers end together, where
/// one after the other would take 3.2 s.
#[test]
fn slow_requests_run_side_by_side_on_the_workers() {
    let mut app = App::start(&["--workers", "4"]);
    let took = four_slow_requests_take(&mut app);
    assert!(took < Duration::from_millis(2400), "4 slow requests on 4 workers took {took:?}");
}

/// The worker processes of a pool share the standby (one thread of all listens), and slow
/// requests still run side by side on all of them: four of 800 ms on two processes of two
/// workers end together, where one process would take 1.6 s and one worker 3.2 s.
#[test]
fn slow_requests_run_side_by_side_on_the_processes_of_a_prefork_pool() {
    let mut app = App::start(&["--processes", "2", "--workers", "2"]);
    let took = four_slow_requests_take(&mut app);
    assert!(took < Duration::from_millis(1500), "4 slow requests on 2 processes of 2 workers took {took:?}");
    let status = app.terminate();
    assert!(status.success(), "{status:?}: {}", app.stderr());
}
