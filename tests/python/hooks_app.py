"""Server hooks that write what they saw to the file named by HOOKS_LOG, one line each."""

from __future__ import annotations

import os


def note(*words: object) -> None:
    with open(os.environ["HOOKS_LOG"], "a") as log:
        log.write(" ".join(str(word) for word in words) + "\n")


def on_starting() -> None:
    note("on_starting", os.getpid())


def post_fork(worker) -> None:
    note("post_fork", worker.pid, os.getpid())


def worker_exit(worker) -> None:
    note("worker_exit", worker.pid)


def pre_request(environ: dict) -> None:
    note("pre_request", os.getpid(), environ["PATH_INFO"])


def post_request(environ: dict, status: str | None) -> None:
    note("post_request", os.getpid(), environ["PATH_INFO"], status)
