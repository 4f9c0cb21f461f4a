#!/usr/bin/env bash
# Install what `make bench` drives: wrk, nginx, curl, valgrind (`make bench-instructions`),
# spawn-fcgi and libfcgi-dev (Debian), and the Python peers flup and uWSGI (bench/requirements.txt;
# pip compiles uWSGI, which needs a C compiler and the interpreter's headers). `make bench-profile`
# adds perf and py-spy. Idempotent: does nothing when all is there. Run as root (CI and the
# developers' machines are).
set -euo pipefail

PYTHON="${PYTHON:-python3}"
PROFILE="${BENCH_INSTALL_PROFILERS:-}"

missing_packages() {
    command -v wrk >/dev/null || echo wrk
    command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || echo nginx
    command -v curl >/dev/null || echo curl
    command -v valgrind >/dev/null || echo valgrind
    command -v spawn-fcgi >/dev/null || echo spawn-fcgi
    [ -f /usr/include/fcgiapp.h ] || echo libfcgi-dev
    command -v cc >/dev/null || echo gcc
    # uWSGI builds against the interpreter's headers: a pyenv or python.org build has its own,
    # Debian's python3 needs python3-dev.
    "$PYTHON" -c 'import os, sysconfig, sys; sys.exit(not os.path.exists(sysconfig.get_paths()["include"] + "/Python.h"))' \
        || echo python3-dev
    if [ -n "$PROFILE" ]; then
        command -v perf >/dev/null || echo linux-perf
    fi
}

mapfile -t packages < <(missing_packages)
if [ "${#packages[@]}" -gt 0 ]; then
    echo "bench/install-deps: installing ${packages[*]}"
    # Forbid service starts while installing (nginx's package would start one on port 80), as
    # Debian's container images do; put back whatever policy was there before.
    policy=/usr/sbin/policy-rc.d
    saved=""
    if [ -e "$policy" ]; then
        saved="$(mktemp)"
        cp -p "$policy" "$saved"
    fi
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    status=0
    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${packages[@]}" || status=$?
    if [ -n "$saved" ]; then mv "$saved" "$policy"; else rm -f "$policy"; fi
    service nginx stop >/dev/null 2>&1 || true
    [ "$status" -eq 0 ] || exit "$status"
fi

requirements=(-r "$(dirname "$0")/requirements.txt")
[ -z "$PROFILE" ] || requirements+=(py-spy)
if ! "$PYTHON" -m pip install -q --root-user-action=ignore "${requirements[@]}" 2>/dev/null; then
    "$PYTHON" -m pip install -q --root-user-action=ignore --break-system-packages "${requirements[@]}"
fi
