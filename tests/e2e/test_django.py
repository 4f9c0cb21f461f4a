"""A real Django site (examples/django, DEBUG off) behind every kind of server: the same django.cgi
under Apache mod_fcgid and mod_cgi, `python -m fcgi_wsgi demo_site.wsgi` behind nginx and lighttpd."""

from __future__ import annotations

import hashlib
import json
import os
import pwd
import re

import pytest

from .harness import client, djangosite, logs
from .harness.fronts import Front

UPLOAD = 20_000_000
BOUNDARY = "e2e-django-boundary-7d1f"
FORM = "application/x-www-form-urlencoded"
CSRF_TOKEN = re.compile(rb'name="csrfmiddlewaretoken" value="([^"]+)"')
BOOM = b"RuntimeError: Django view failed on purpose"
WWW_DATA = pwd.getpwnam("www-data").pw_uid

# What Django sees at /whoami/ behind each server: who runs it, and how the server split the URL
# into SCRIPT_NAME (the mount point) and PATH_INFO (what the URL resolver matches).
WHOAMI = {
    "apache-fcgid": {"uid": WWW_DATA, "script_name": "/django.cgi", "path_info": "/whoami/"},
    "apache-cgi": {"uid": WWW_DATA, "script_name": "/django.cgi", "path_info": "/whoami/"},
    "nginx": {"uid": 0, "script_name": "", "path_info": "/whoami/"},
    "lighttpd-socket": {"uid": 0, "script_name": "/django", "path_info": "/whoami/"},
}


@pytest.fixture(scope="session")
def upload() -> bytes:
    return os.urandom(UPLOAD)


def multipart(field: str, filename: str, data: bytes) -> tuple[bytes, str]:
    """A multipart/form-data body with one file, and its Content-Type."""
    head = (
        f"--{BOUNDARY}\r\n"
        f'Content-Disposition: form-data; name="{field}"; filename="{filename}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    )
    return head.encode() + data + f"\r\n--{BOUNDARY}--\r\n".encode(), f"multipart/form-data; boundary={BOUNDARY}"


def cookie_pairs(response: client.Response) -> list[str]:
    """`name=value` of every Set-Cookie header, without the attributes."""
    return [value.split(";")[0] for value in response.header_values("Set-Cookie")]


def test_page(django_front: Front) -> None:
    response = client.get(django_front, django_front.url("/"))
    assert response.status == 200, response
    assert b"Hello from Django" in response.body


def test_form_post_with_csrf(django_front: Front) -> None:
    page = client.get(django_front, django_front.url("/form/"))
    assert page.status == 200, page
    csrf_cookie = [pair for pair in cookie_pairs(page) if pair.startswith("csrftoken=")]
    assert len(csrf_cookie) == 1, page
    token = CSRF_TOKEN.search(page.body)
    assert token is not None, page
    body = f"csrfmiddlewaretoken={token[1].decode()}&name=Ada".encode()
    headers = {"Content-Type": FORM, "Cookie": csrf_cookie[0]}
    response = client.request(django_front, "POST", django_front.url("/form/"), body, headers)
    assert (response.status, response.body) == (200, b"Hello, Ada!"), response


def test_form_post_without_csrf_is_403(django_front: Front) -> None:
    body = b"name=Mallory"
    response = client.request(django_front, "POST", django_front.url("/form/"), body, {"Content-Type": FORM})
    assert response.status == 403, response


def test_upload_20_mb(django_front: Front, upload: bytes) -> None:
    body, content_type = multipart("file", "big.bin", upload)
    response = client.request(django_front, "POST", django_front.url("/upload/"), body, {"Content-Type": content_type})
    assert response.status == 200, response
    expected = {"name": "big.bin", "size": len(upload), "sha256": hashlib.sha256(upload).hexdigest()}
    assert json.loads(response.body) == expected


def test_cookies_and_redirect(django_front: Front) -> None:
    response = client.get(django_front, django_front.url("/cookies/"))
    assert response.status == 302, response
    assert response.headers["Location"] == "/whoami/"
    cookies = cookie_pairs(response)
    assert sorted(cookies) == ["colour=blue", "flavour=oatmeal"], response
    # The view redirects to the site's root; the site lives under the server's mount point.
    seen = client.request(django_front, "GET", django_front.url("/whoami/"), headers={"Cookie": "; ".join(cookies)})
    assert seen.status == 200, seen
    assert json.loads(seen.body)["cookies"] == {"colour": "blue", "flavour": "oatmeal"}


def test_script_name_and_path_info(django_front: Front) -> None:
    response = client.get(django_front, django_front.url("/whoami/"))
    assert response.status == 200, response
    whoami = json.loads(response.body)
    expected = WHOAMI[django_front.name]
    assert {key: whoami[key] for key in expected} == expected
    assert whoami["path"] == expected["script_name"] + expected["path_info"]


def test_unknown_page_is_404(django_front: Front) -> None:
    response = client.get(django_front, django_front.url("/no/such/page/"))
    assert response.status == 404, response
    assert b"Not Found" in response.body


def test_failing_view_is_500_and_logged(django_front: Front) -> None:
    response = client.get(django_front, django_front.url("/boom/"))
    assert response.status == 500, response
    assert b"Server Error (500)" in response.body
    assert BOOM not in response.body
    # Django logs it to stderr: the server's error log when the server spawned the app.
    where = list(django_front.logs().values())
    assert logs.wait_for(where, BOOM), f"{BOOM!r} in none of {where}"


def test_djangos_logging_receives_the_access_records_through_nginx(
    django_site: djangosite.Site, make_workdir, request: pytest.FixtureRequest
) -> None:
    """The site's LOGGING routes the logger fcgi_wsgi.access to the file DEMO_ACCESS_LOG names:
    one record per request nginx passed, with the status Django answered."""
    from .conftest import selected_django_fronts

    if "nginx" not in selected_django_fronts(request.config):
        pytest.skip("nginx and the Django site not selected")
    workdir = make_workdir("nginx-django-logging")
    records = workdir / "access.log"
    app = django_site.app(env={"DEMO_ACCESS_LOG": str(records)})
    with djangosite.nginx_root(django_site, workdir, app) as front:
        statuses = [client.get(front, path).status for path in ("/", "/no/such/page/", "/boom/")]
        assert statuses == [200, 404, 500]
        assert logs.wait_for([records], b"/boom/"), "no access record in Django's LOGGING file"
    lines = records.read_text().splitlines()
    # The default format (Apache's combined), one record per request, with nginx's client address.
    requests = sorted(re.search(r'^127\.0\.0\.1 .*"(GET \S+ HTTP/1.1)" (\d{3}) ', line).groups() for line in lines)
    expected = [("GET / HTTP/1.1", "200"), ("GET /boom/ HTTP/1.1", "500"), ("GET /no/such/page/ HTTP/1.1", "404")]
    assert requests == expected, lines
