#!/usr/bin/env bash
# A WSGI app (demo/app.py) served by fcgi_wsgi through nginx on 127.0.0.1:${PORT:-8080}.
# Prints the URL and a sample response, then serves until Ctrl-C (or exits at once with DEMO_ONCE=1).
set -euo pipefail
cd "$(dirname "$0")/.."
PORT=${PORT:-8080}

if ! command -v nginx >/dev/null || ! command -v curl >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx curl >/dev/null
    service nginx stop >/dev/null 2>&1 || true
fi
PYTHON=${PYTHON:-python3}
"$PYTHON" -m pip install -q --root-user-action=ignore .

work=$(mktemp -d /tmp/fcgi-demo.XXXXXX)
chmod 755 "$work"
app_pid='' nginx_pid=''
cleanup() {
    [ -n "$nginx_pid" ] && kill "$nginx_pid" 2>/dev/null && wait "$nginx_pid" 2>/dev/null
    [ -n "$app_pid" ] && kill "$app_pid" 2>/dev/null && wait "$app_pid" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 0' INT TERM

"$PYTHON" -m fcgi_wsgi --chdir demo app:app --bind "unix:$work/app.sock" 2>"$work/app.log" &
app_pid=$!
cat >"$work/nginx.conf" <<CONF
worker_processes 1;
error_log $work/error.log;
pid $work/nginx.pid;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $work/body;
    fastcgi_temp_path $work/fastcgi;
    proxy_temp_path $work/proxy;
    uwsgi_temp_path $work/uwsgi;
    scgi_temp_path $work/scgi;
    upstream app { server unix:$work/app.sock; keepalive 8; }
    server {
        listen 127.0.0.1:$PORT;
        client_max_body_size 0;
        location / {
            fastcgi_pass app;
            fastcgi_keep_conn on;
            fastcgi_param REQUEST_METHOD \$request_method;
            fastcgi_param REQUEST_URI \$request_uri;
            fastcgi_param QUERY_STRING \$query_string;
            fastcgi_param SCRIPT_NAME "";
            fastcgi_param PATH_INFO \$uri;
            fastcgi_param CONTENT_TYPE \$content_type;
            fastcgi_param CONTENT_LENGTH \$content_length;
            fastcgi_param SERVER_PROTOCOL \$server_protocol;
            fastcgi_param SERVER_NAME \$server_name;
            fastcgi_param SERVER_PORT \$server_port;
            fastcgi_param REMOTE_ADDR \$remote_addr;
        }
    }
}
CONF
for _ in $(seq 100); do [ -S "$work/app.sock" ] && break; sleep 0.05; done
chmod 666 "$work/app.sock"  # nginx workers run as an unprivileged user
nginx -p "$work" -c "$work/nginx.conf" -g 'daemon off;' &
nginx_pid=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/" >/dev/null 2>&1 && break; sleep 0.05; done

echo "Serving demo/app.py with fcgi_wsgi through nginx at http://127.0.0.1:$PORT/"
echo
echo "\$ curl -i http://127.0.0.1:$PORT/"
curl -si "http://127.0.0.1:$PORT/"
echo
[ -n "${DEMO_ONCE:-}" ] && exit 0
echo "Press Ctrl-C to stop."
wait "$nginx_pid"
