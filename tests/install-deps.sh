#!/usr/bin/env bash
# Install what the end-to-end tests drive: nginx, Apache (mod_fcgid, mod_cgi, mod_proxy_fcgi),
# lighttpd, HAProxy (the one server that multiplexes FastCGI), curl, headless Chromium; cargo-c (tests/install-cargo-c.sh) for
# installing the C libraries; and pytest and ruff for the tests and their lint. Idempotent: does
# nothing when all is there.
#
# The tests run each web server in the foreground on their own port; the system services that
# Debian's packages start on port 80 are kept from starting (policy-rc.d) and stopped if they
# did start anyway. Run as root (CI and the developers' machines are).
set -euo pipefail

PYTHON="${PYTHON:-python3}"
SERVICES=(nginx apache2 lighttpd haproxy)

missing_packages() {
    command -v nginx >/dev/null || echo nginx
    command -v apache2 >/dev/null || [ -x /usr/sbin/apache2 ] || echo apache2
    [ -f /usr/lib/apache2/modules/mod_fcgid.so ] || echo libapache2-mod-fcgid
    [ -e /usr/lib/apache2/suexec ] || echo apache2-suexec-pristine   # test_suexec.py: per-user sites
    command -v lighttpd >/dev/null || [ -x /usr/sbin/lighttpd ] || echo lighttpd
    command -v haproxy >/dev/null || [ -x /usr/sbin/haproxy ] || echo haproxy   # test_haproxy.py: multiplexing
    command -v curl >/dev/null || echo curl
    command -v valgrind >/dev/null || echo valgrind
    command -v pkg-config >/dev/null || echo pkg-config
    [ -f /usr/include/fcgiapp.h ] || echo libfcgi-dev
    command -v chromium >/dev/null || echo chromium   # test_status.py: the HTML status page, headless
}

install_packages() {
    # Forbid service starts while installing (exit 101 = "action forbidden"), as Debian's
    # container images do; put back whatever policy was there before.
    local policy=/usr/sbin/policy-rc.d saved=""
    if [ -e "$policy" ]; then
        saved="$(mktemp)"
        cp -p "$policy" "$saved"
    fi
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    local status=0
    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" || status=$?
    if [ -n "$saved" ]; then mv "$saved" "$policy"; else rm -f "$policy"; fi
    for service in "${SERVICES[@]}"; do
        service "$service" stop >/dev/null 2>&1 || true
    done
    return "$status"
}

mapfile -t packages < <(missing_packages)
if [ "${#packages[@]}" -gt 0 ]; then
    echo "install-deps: installing ${packages[*]}"
    install_packages "${packages[@]}"
fi

for module in pytest ruff; do
    if ! "$PYTHON" -c "import $module" 2>/dev/null; then
        echo "install-deps: installing $module for $PYTHON"
        "$PYTHON" -m pip install -q "$module" || "$PYTHON" -m pip install -q --break-system-packages "$module"
    fi
done
