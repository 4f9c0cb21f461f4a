"""nginx in the foreground with a self-contained config, passing locations to FastCGI apps."""

from __future__ import annotations

from pathlib import Path

from .net import LOOPBACK, Address
from .process import Process
from .service import WebServer

BINARY = "/usr/sbin/nginx"

# Workers run as root: they connect to Unix sockets that the harness's app (root) created.
CONFIG = """\
user root;
worker_processes 2;
pid {workdir}/nginx.pid;
error_log {error_log} info;
worker_rlimit_nofile {worker_connections_twice};
events {{
    worker_connections {worker_connections};
}}
http {{
    access_log off;
    client_max_body_size 0;
    client_body_temp_path {workdir}/nginx-tmp/client_body;
    fastcgi_temp_path {workdir}/nginx-tmp/fastcgi;
    proxy_temp_path {workdir}/nginx-tmp/proxy;
    scgi_temp_path {workdir}/nginx-tmp/scgi;
    uwsgi_temp_path {workdir}/nginx-tmp/uwsgi;
{upstreams}
    server {{
        listen {host}:{port};
        server_name localhost;
{locations}
    }}
}}
"""

# What /etc/nginx/fastcgi_params gives, plus PATH_INFO, spelled out to be self-contained.
FASTCGI_PARAMS = """\
            fastcgi_param QUERY_STRING $query_string;
            fastcgi_param REQUEST_METHOD $request_method;
            fastcgi_param CONTENT_TYPE $content_type;
            fastcgi_param CONTENT_LENGTH $content_length;
            fastcgi_param SCRIPT_NAME $fastcgi_script_name;
            fastcgi_param PATH_INFO $fastcgi_path_info;
            fastcgi_param REQUEST_URI $request_uri;
            fastcgi_param DOCUMENT_URI $document_uri;
            fastcgi_param SERVER_PROTOCOL $server_protocol;
            fastcgi_param REQUEST_SCHEME $scheme;
            fastcgi_param GATEWAY_INTERFACE CGI/1.1;
            fastcgi_param SERVER_SOFTWARE nginx/$nginx_version;
            fastcgi_param REMOTE_ADDR $remote_addr;
            fastcgi_param REMOTE_PORT $remote_port;
            fastcgi_param SERVER_ADDR $server_addr;
            fastcgi_param SERVER_PORT $server_port;
            fastcgi_param SERVER_NAME $server_name;
            fastcgi_param HTTP_HOST $host;
"""


def target(address: Address) -> str:
    """An address as nginx spells it in `fastcgi_pass` and `server`."""
    if isinstance(address, Path):
        return f"unix:{address}"
    host, port = address
    return f"{host}:{port}"


def upstream(name: str, servers: list[Address], keepalive: int = 0) -> str:
    lines = [f"        server {target(a)};" for a in servers]
    if keepalive:
        lines.append(f"        keepalive {keepalive};")
    return f"    upstream {name} {{\n" + "\n".join(lines) + "\n    }\n"


def location(prefix: str, fastcgi_pass: str, keep_conn: bool = False, buffering: bool = True) -> str:
    """`prefix/...` to FastCGI: SCRIPT_NAME is the prefix, PATH_INFO the rest.

    `fastcgi_pass` is an upstream name or a `target()`. With `keep_conn` nginx asks the app to
    keep the connection (KEEP_CONN) and reuses it through the upstream's keepalive pool. Without
    `buffering` nginx passes each piece of the response on as it comes (a streamed response).
    """
    extra = "            fastcgi_keep_conn on;\n" if keep_conn else ""
    extra += "" if buffering else "            fastcgi_buffering off;\n"
    return f"""\
        location {prefix}/ {{
            fastcgi_split_path_info ^({prefix})(/.*)$;
{FASTCGI_PARAMS}{extra}            fastcgi_next_upstream error timeout;
            fastcgi_read_timeout 120s;
            fastcgi_pass {fastcgi_pass};
        }}
"""


def root_location(fastcgi_pass: str, keep_conn: bool = False) -> str:
    """The whole site to FastCGI, as the README's nginx snippet mounts Django: SCRIPT_NAME empty,
    PATH_INFO the whole decoded path. Its two `fastcgi_param` lines come after the common ones,
    as after `include fastcgi_params`, so nginx sends both names twice: the override last."""
    extra = "            fastcgi_keep_conn on;\n" if keep_conn else ""
    return f"""\
        location / {{
{FASTCGI_PARAMS}            fastcgi_param SCRIPT_NAME "";
            fastcgi_param PATH_INFO $fastcgi_script_name;
{extra}            fastcgi_read_timeout 120s;
            fastcgi_pass {fastcgi_pass};
        }}
"""


class Nginx(WebServer):
    """`nginx -p DIR -c CONF -g 'daemon off; master_process on;'`."""

    def __init__(self, workdir: Path, port: int, upstreams: str, locations: str, worker_connections: int = 512):
        self.address = (LOOPBACK, port)
        self.error_log = workdir / "error.log"
        self.config = workdir / "nginx.conf"
        (workdir / "nginx-tmp").mkdir(exist_ok=True)
        self.config.write_text(
            CONFIG.format(
                workdir=workdir,
                error_log=self.error_log,
                host=LOOPBACK,
                port=port,
                upstreams=upstreams,
                locations=locations,
                worker_connections=worker_connections,
                worker_connections_twice=2 * worker_connections,
            )
        )
        argv = [
            BINARY,
            "-p",
            workdir,
            "-c",
            self.config,
            "-e",
            self.error_log,
            "-g",
            "daemon off; master_process on;",
        ]
        self.process = Process("nginx", argv, log=workdir / "nginx.out.log")
