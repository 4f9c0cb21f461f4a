//! A reload with worker processes keeps serving: on SIGHUP the supervisor re-executes itself at
//! once (same pid, same listener), its new generation of workers accepts while the old workers
//! finish the requests they hold, and a stop during all this stops both generations.
//!
//! Runs against the Rust echo (`make rust-test`) and the Python face (`make python-test`).

mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::{Address, App, Client};

/// The slow request held by an old worker across the reload.
const SLOW_MS: u64 = 3000;

/// The children of `pid`, from /proc/PID/task/*/children (empty once it is gone).
fn children_of(pid: u32) -> BTreeSet<u32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return BTreeSet::new() };
    tasks
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("children")).ok())
        .flat_map(|list| list.split_whitespace().filter_map(|p| p.parse().ok()).collect::<Vec<u32>>())
        .collect()
}

/// Processes whose command line names `needle` (the app's socket path: its own, and every
/// worker it forked, carry it), other than this test process.
fn processes_naming(needle: &str) -> BTreeSet<u32> {
    let me = std::process::id();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| *pid != me)
        .filter(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            String::from_utf8_lossy(&cmdline).contains(needle)
        })
        .collect()
}

/// Processes whose parent is `parent` (PPid in /proc/PID/status), zombies included.
fn processes_with_parent(parent: u32) -> BTreeSet<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
            status.lines().find_map(|l| l.strip_prefix("PPid:")).and_then(|p| p.trim().parse::<u32>().ok())
                == Some(parent)
        })
        .collect()
}

fn is_running(pid: u32) -> bool {
    // SAFETY: kill(2) with signal 0 only checks that the process exists.
    unsafe { libc::kill(pid as i32, 0) == 0 }
}

fn socket_path(app: &App) -> PathBuf {
    match &app.address {
        Address::Unix(path) => path.clone(),
        Address::Tcp(_) => unreachable!("the app listens on a Unix socket"),
    }
}

fn pid_answering(app: &App) -> u32 {
    let response = app.connect().get(1, "/pid", false);
    String::from_utf8_lossy(response.body()).trim().parse().expect("a pid")
}

/// Waits (at most `limit`) until `done` holds, panicking with `what` otherwise.
fn wait_for(limit: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Starts the app with two worker processes and waits for both of them: their pids.
fn start_two_processes() -> (App, BTreeSet<u32>) {
    let mut app = App::start(&["--processes", "2", "--workers", "2"]);
    app.assert_serves();
    let supervisor = app.child.id();
    wait_for(Duration::from_secs(20), "two worker processes", || children_of(supervisor).len() == 2);
    let workers = children_of(supervisor);
    (app, workers)
}

/// A connection whose `/slow` request a worker has begun to serve.
fn slow_request_in_flight(app: &App) -> Client {
    let mut slow = app.connect();
    slow.request(1, "GET", &format!("/slow?ms={SLOW_MS}"), b"", false);
    std::thread::sleep(Duration::from_millis(300));
    slow
}

#[test]
fn a_reload_with_processes_serves_new_requests_while_the_old_workers_finish() {
    let (mut app, old_workers) = start_two_processes();
    let supervisor = app.child.id();
    let path = socket_path(&app);
    let mut slow = slow_request_in_flight(&app);

    let sighup = Instant::now();
    app.signal(libc::SIGHUP);
    // Past the moment the old workers are told to stop: this connection is the new generation's.
    std::thread::sleep(Duration::from_millis(100));
    let answered_by = pid_answering(&app);
    let took = sighup.elapsed();
    eprintln!("SIGHUP with a {SLOW_MS} ms request in flight, --processes 2: next answer after {took:?}");
    assert!(took < Duration::from_millis(1500), "the next request waited {took:?} for the slow one: {}", app.stderr());
    assert!(!old_workers.contains(&answered_by), "an old worker ({answered_by}) answered after the reload");
    assert_ne!(answered_by, supervisor, "the supervisor serves nothing itself");

    let response = slow.response(1);
    assert_eq!(response.status(), 200, "{}", app.stderr());
    assert_eq!(response.body(), format!("slept {SLOW_MS}\n").as_bytes(), "the slow request ends whole");
    assert!(app.child.try_wait().unwrap().is_none(), "the supervisor lives on: {}", app.stderr());

    // The old workers end once their requests are done; the new supervisor (the same pid,
    // re-executed) reaps them and keeps exactly two workers.
    wait_for(Duration::from_secs(10), "the old workers ended and were reaped", || {
        old_workers.iter().all(|pid| !is_running(*pid))
    });
    let workers = children_of(supervisor);
    assert_eq!(workers.len(), 2, "exactly two worker processes after the reload: {workers:?}");
    assert!(workers.is_disjoint(&old_workers), "{workers:?} vs the old {old_workers:?}");
    assert!(workers.contains(&answered_by));
    assert!(path.exists(), "no old worker removed the socket file");
    app.assert_serves();
    let status = app.terminate();
    assert!(status.success(), "{status:?}: {}", app.stderr());
    assert!(!path.exists(), "the socket file is removed at the stop");
}

#[test]
fn a_stop_during_a_reload_stops_both_generations_of_workers() {
    let (mut app, old_workers) = start_two_processes();
    let supervisor = app.child.id();
    let path = socket_path(&app);
    let mut slow = slow_request_in_flight(&app);
    app.signal(libc::SIGHUP);
    // The new generation is up: it answers, while an old worker still holds the slow request.
    std::thread::sleep(Duration::from_millis(100));
    let new_worker = pid_answering(&app);
    assert!(!old_workers.contains(&new_worker), "an old worker ({new_worker}) answered after the reload");
    let generations = children_of(supervisor);
    assert!(generations.contains(&new_worker), "{generations:?}");
    assert!(
        generations.iter().any(|pid| old_workers.contains(pid)),
        "the old worker holding the slow request is still a child of the supervisor: {generations:?}"
    );

    app.signal(libc::SIGTERM);
    let response = slow.response(1);
    assert_eq!(response.body(), format!("slept {SLOW_MS}\n").as_bytes(), "the stop lets the slow request end");
    let status = app.wait_exit(Duration::from_secs(20)).expect("the supervisor ends");
    assert!(status.success(), "{status:?}: {}", app.stderr());
    // The supervisor waited for every worker of both generations before it ended: none is left.
    for pid in generations.iter().chain(&old_workers) {
        wait_for(Duration::from_secs(5), &format!("worker {pid} outlived its supervisor"), || !is_running(*pid));
    }
    let needle = path.to_string_lossy().into_owned();
    assert_eq!(processes_naming(&needle), BTreeSet::new(), "processes left serving {needle}");
    assert_eq!(processes_with_parent(supervisor), BTreeSet::new(), "children of the supervisor left");
    assert!(!path.exists(), "the socket file is removed at the stop");
}

/// A SIGHUP that reaches a worker process (a whole process group signalled, say) stops that
/// worker alone: past its graceful timeout it ends, and its supervisor starts another. It never
/// re-executes the program itself, which would leave a second supervisor on the socket, a child
/// of the first that nobody reaps.
#[test]
fn a_sighup_to_a_worker_process_ends_it_without_re_executing_the_program() {
    let mut app = App::start(&["--processes", "2", "--workers", "2", "--graceful-timeout", "1"]);
    app.assert_serves();
    let supervisor = app.child.id();
    wait_for(Duration::from_secs(20), "two worker processes", || children_of(supervisor).len() == 2);
    let old_workers = children_of(supervisor);
    let mut slow = app.connect();
    slow.request(1, "GET", "/slow?ms=30000", b"", false);
    std::thread::sleep(Duration::from_millis(300));
    for pid in &old_workers {
        // SAFETY: kill(2) on a worker process of the app under test.
        unsafe { libc::kill(*pid as i32, libc::SIGHUP) };
    }
    // The one holding the slow request ends at its graceful timeout (1 s), the other at once.
    wait_for(Duration::from_secs(10), "the signalled workers ended", || {
        old_workers.iter().all(|pid| !is_running(*pid))
    });
    assert!(slow.is_closed_by_app(), "the request cut at the graceful timeout closes its connection");
    wait_for(Duration::from_secs(10), "two new workers", || {
        let now = children_of(supervisor);
        now.len() == 2 && now.is_disjoint(&old_workers)
    });
    let needle = socket_path(&app).to_string_lossy().into_owned();
    let mut serving = children_of(supervisor);
    serving.insert(supervisor);
    assert_eq!(processes_naming(&needle), serving, "only the supervisor and its two workers");
    app.assert_serves();
    let status = app.terminate();
    assert!(status.success(), "{status:?}: {}", app.stderr());
}
