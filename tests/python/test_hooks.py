"""gunicorn's server hooks, given as MODULE:FUNCTION on the command line or in a config file,
or as callables to `serve_wsgi`: each called where and as often as it should be, in the
processes it should be."""

from __future__ import annotations

import subprocess
import sys
import time

from conftest import HERE, start, wait_until_listening
from fcgi_client import request

HOOKS = ("on_starting", "post_fork", "worker_exit", "pre_request", "post_request")


def test_every_hook_runs_in_its_process_as_often_as_it_should(tmp_path, monkeypatch) -> None:
    log = tmp_path / "hooks.log"
    monkeypatch.setenv("HOOKS_LOG", str(log))
    flags = [arg for hook in HOOKS for arg in (f"--{hook.replace('_', '-')}", f"hooks_app:{hook}")]
    process, address, _ = start(tmp_path, "--processes", "2", "--workers", "1", *flags)
    try:
        # A worker stopped while it still loads the app (after post_fork) ends as SIGTERM's
        # default does, without worker_exit: let both start serving first.
        deadline = time.monotonic() + 10
        while log.read_text().count("post_fork") < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(1)
        for path in ("/a", "/b", "/c"):
            assert request(address, path).status == 404  # the semantics app's own page
    finally:
        process.terminate()
        assert process.wait(10) == 0
    lines = [line.split() for line in log.read_text().splitlines()]
    by_hook: dict[str, list[list[str]]] = {}
    for hook, *rest in lines:
        by_hook.setdefault(hook, []).append(rest)
    supervisor = str(process.pid)
    assert by_hook["on_starting"] == [[supervisor]], lines
    workers = {pid for pid, _ in by_hook["post_fork"]}
    assert len(by_hook["post_fork"]) == 2 and len(workers) == 2 and supervisor not in workers, lines
    assert all(told == own for told, own in by_hook["post_fork"]), "worker.pid is the worker's own"
    assert sorted(pid for (pid,) in by_hook["worker_exit"]) == sorted(workers), lines
    assert sorted(path for _, path in by_hook["pre_request"]) == ["/a", "/b", "/c"], lines
    assert sorted((path, " ".join(status)) for _, path, *status in by_hook["post_request"]) == [
        ("/a", "404 Not Found"),
        ("/b", "404 Not Found"),
        ("/c", "404 Not Found"),
    ], lines
    assert {pid for pid, *_ in by_hook["pre_request"]} <= workers, "requests are served by the workers"


def test_a_lone_process_runs_post_fork_and_worker_exit_once_itself(tmp_path, monkeypatch) -> None:
    log = tmp_path / "hooks.log"
    monkeypatch.setenv("HOOKS_LOG", str(log))
    # --processes 1: a bound socket would otherwise get a process per core.
    process, address, _ = start(
        tmp_path, "--post-fork", "hooks_app:post_fork", "--worker-exit", "hooks_app:worker_exit", "--processes", "1"
    )
    try:
        assert request(address, "/a").status == 404
    finally:
        process.terminate()
        assert process.wait(10) == 0
    pid = process.pid
    assert log.read_text().splitlines() == [f"post_fork {pid} {pid}", f"worker_exit {pid}"]


def run_and_read(process, address: str, log) -> list[str]:
    """Two requests to `process`, then SIGTERM: the lines the hooks wrote."""
    try:
        assert [request(address, path).status for path in ("/a", "/b")] == [404, 404]
    finally:
        process.terminate()
        assert process.wait(10) == 0
    return log.read_text().splitlines()


def expected(pid: int) -> list[str]:
    return [
        f"on_starting {pid}",
        f"post_fork {pid} {pid}",
        f"pre_request {pid} /a",
        f"post_request {pid} /a 404 Not Found",
        f"pre_request {pid} /b",
        f"post_request {pid} /b 404 Not Found",
        f"worker_exit {pid}",
    ]


def test_hooks_given_as_serve_wsgi_keywords_are_called(tmp_path, monkeypatch) -> None:
    """The hooks as callables, keyword arguments of `serve_wsgi` in a program of one's own."""
    log, address = tmp_path / "hooks.log", str(tmp_path / "app.sock")
    monkeypatch.setenv("HOOKS_LOG", str(log))
    program = (
        "import sys, fcgi_wsgi, hooks_app, semantics_app\n"
        "fcgi_wsgi.serve_wsgi(semantics_app.app, sys.argv[1], workers=1,\n"
        "    processes=1, **{hook: getattr(hooks_app, hook) for hook in sys.argv[2:]})\n"
    )
    process = subprocess.Popen([sys.executable, "-c", program, address, *HOOKS], cwd=HERE, stdin=subprocess.DEVNULL)
    wait_until_listening(process, address)
    # Requests are served by one thread, so their lines come in order.
    assert run_and_read(process, address, log) == expected(process.pid)


def test_hooks_given_in_a_config_file_are_called(tmp_path, monkeypatch) -> None:
    """The hooks as `module:function` entries of a `--config` file, under the long flags' names."""
    log, config = tmp_path / "hooks.log", tmp_path / "fcgi-wsgi.toml"
    monkeypatch.setenv("HOOKS_LOG", str(log))
    config.write_text("".join(f'{hook.replace("_", "-")} = "hooks_app:{hook}"\n' for hook in HOOKS))
    process, address, _ = start(tmp_path, "--config", str(config), "--workers", "1", "--processes", "1")
    assert run_and_read(process, address, log) == expected(process.pid)
