"""The recipe's django.cgi, unchanged but for its import line, in CGI mode and over FastCGI."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import wait_until_listening
from fcgi_client import Response, parse_cgi, request

DJANGO_CGI = Path(__file__).resolve().parents[2] / "examples" / "django" / "django.cgi"


def cgi(path: str, method: str = "GET", body: bytes = b"", **params: str) -> Response:
    env = {"PATH": os.environ["PATH"], "REQUEST_METHOD": method, "PATH_INFO": path, "SCRIPT_NAME": ""}
    env.update({"SERVER_NAME": "localhost", "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1"})
    if body:
        env["CONTENT_LENGTH"] = str(len(body))
    env.update(params)
    result = subprocess.run([sys.executable, str(DJANGO_CGI)], input=body, env=env, capture_output=True, timeout=60)
    assert result.returncode == 0, result.stderr.decode()
    return parse_cgi(Response(stdout=result.stdout, stderr=result.stderr))


def test_cgi_page_404_and_500():
    assert b"Hello from Django" in cgi("/").body
    assert cgi("/no/such/page/").status == 404
    response = cgi("/boom/")
    assert response.status == 500
    assert b"Django view failed on purpose" in response.stderr, "Django logs the error to stderr"


def test_cgi_form_with_csrf():
    page = cgi("/form/")
    cookie = page.header("Set-Cookie")
    token = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', page.body).group(1).decode()
    csrf_cookie = cookie.split(";")[0]
    body = f"csrfmiddlewaretoken={token}&name=Ada".encode()
    headers = {"HTTP_COOKIE": csrf_cookie, "CONTENT_TYPE": "application/x-www-form-urlencoded"}
    assert cgi("/form/", "POST", body, **headers).body == b"Hello, Ada!"
    assert cgi("/form/", "POST", b"name=Mallory", CONTENT_TYPE="application/x-www-form-urlencoded").status == 403


@pytest.fixture(scope="module")
def django_fcgi(tmp_path_factory):
    address = str(tmp_path_factory.mktemp("django") / "django.sock")
    site = str(DJANGO_CGI.parent)
    command = [sys.executable, "-m", "fcgi_wsgi", "--chdir", site, "demo_site.wsgi", "--bind", address]
    process = subprocess.Popen(command, stdin=subprocess.DEVNULL)
    wait_until_listening(process, address, within=30)
    yield address
    process.terminate()
    assert process.wait(10) == 0


def multipart(field: str, filename: str, data: bytes) -> tuple[bytes, str]:
    boundary = "fcgiwsgiboundary7"
    head = f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="{filename}"\r\n'
    head += "Content-Type: application/octet-stream\r\n\r\n"
    body = head.encode() + data + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def test_fastcgi_upload_of_20_mb(django_fcgi):
    data = os.urandom(20_000_000)
    body, content_type = multipart("file", "big.bin", data)
    response = request(django_fcgi, "/upload/", "POST", body, params={"CONTENT_TYPE": content_type})
    assert response.status == 200, response.stderr
    report = json.loads(response.body)
    assert report == {"name": "big.bin", "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def test_fastcgi_cookies_and_redirect(django_fcgi):
    response = request(django_fcgi, "/cookies/")
    assert response.status == 302
    assert response.header("Location") == "/whoami/"
    cookies = [value.split(";")[0] for name, value in response.headers if name == "Set-Cookie"]
    assert sorted(cookies) == ["colour=blue", "flavour=oatmeal"]
    seen = json.loads(request(django_fcgi, "/whoami/", params={"HTTP_COOKIE": "; ".join(cookies)}).body)
    assert seen["cookies"] == {"colour": "blue", "flavour": "oatmeal"}
