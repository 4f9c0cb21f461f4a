#!/usr/bin/env bash
# cargo-c, which `make install-capi` / `install-compat` (and so the packaging tests) run.
#
#   tests/install-cargo-c.sh start   # if it is missing, build it in the background (make deps)
#   tests/install-cargo-c.sh wait    # until it is there: the background build ends, or this builds it
#
# Debian bookworm's cargo-c 0.9.14 is built on cargo 0.66 (Rust 1.65): it cannot read this
# workspace (Cargo.lock version 4, dependencies of edition 2024, `dep:` features), and trixie's
# needs glibc 2.39. So it is built from crates.io, once per machine, pinned and --locked. A debug
# build without debug info: the tool only drives cargo and rustc (its output is byte for byte an
# optimised build's), and it builds in about 4-6 minutes, downloads included, where an optimised
# one took some twenty on two cores. `make test` starts it at its beginning, at the lowest CPU
# priority, so that it takes the time the tests leave idle (the end-to-end tests wait on servers
# more than they compute), and waits for it only before the packaging tests.
set -euo pipefail

CARGO_C_VERSION=0.10.24
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
LOG="$ROOT/target/cargo-c-build.log"
PID_FILE="$ROOT/target/cargo-c-build.pid"

installed() {
    local version
    version="$(cargo cinstall --version 2>/dev/null | sed -n 's/^cargo-c \([0-9][0-9.]*\).*/\1/p')"
    case "$version" in
        0.[0-9].* | "") return 1 ;;
        *) return 0 ;;
    esac
}

build() {
    CARGO_PROFILE_DEV_DEBUG=0 nice -n 19 cargo install --locked --debug "cargo-c@$CARGO_C_VERSION"
}

running() {
    [ -f "$PID_FILE" ] && kill -0 "$(cat "$PID_FILE")" 2>/dev/null
}

case "${1:-}" in
    start)
        if installed || running; then
            exit 0
        fi
        mkdir -p "$ROOT/target"
        echo "install-cargo-c: building cargo-c $CARGO_C_VERSION in the background (log: $LOG)"
        (build >"$LOG" 2>&1; rm -f "$PID_FILE") </dev/null &
        echo $! >"$PID_FILE"
        ;;
    wait)
        if running; then
            echo "install-cargo-c: waiting for the background build of cargo-c (log: $LOG)"
            while running; do sleep 2; done
        fi
        if ! installed; then
            echo "install-cargo-c: building cargo-c $CARGO_C_VERSION"
            build
        fi
        ;;
    *)
        echo "usage: $0 start|wait" >&2
        exit 2
        ;;
esac
