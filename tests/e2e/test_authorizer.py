"""The Django example site as the web server's FastCGI authorizer (fcgi_wsgi.authorizer): its
session decides who may fetch a static file and run a CGI script that the web server serves
itself, from the site's `private/` folder.

- Apache mod_fcgid runs examples/django/authorizer.cgi for the folder. It turns any denial into
  a 401 that keeps the authorizer's headers, so the view answers an anonymous session with a 401
  and `WWW-Authenticate`.
- lighttpd (`"mode" => "authorizer"`) asks the site, started by the harness, and sends a denial
  to the client as written: the view's redirect to the login page.

Either way a logged-in session gets the file, and the CGI script sees the user the view named
in `Variable-REMOTE_USER` as `REMOTE_USER`. The session comes from the site's own login page.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from .harness import apache, client, djangosite, lighttpd, pythonpath, selection
from .harness.apps import App
from .harness.backend import Backend
from .harness.fronts import Front
from .harness.net import free_port

CSRF_TOKEN = re.compile(rb'name="csrfmiddlewaretoken" value="([^"]+)"')
FORM = "application/x-www-form-urlencoded"
# Prints the variable the authorizer passed on (empty if none reached it).
WHOAMI = '#!/bin/sh\nprintf "Content-Type: text/plain\\r\\n\\r\\nREMOTE_USER=%s" "$REMOTE_USER"\n'
FILE = os.urandom(100_000)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "guarded" in metafunc.fixturenames:
        pairs = {"apache-fcgid": ("apache-fcgid", djangosite.NAME), "lighttpd": ("lighttpd-socket", djangosite.NAME)}
        chosen = selection.params(metafunc.config, pairs)
        metafunc.parametrize("guarded", chosen, indirect=True, scope="module")


def private_folder(site: djangosite.Site) -> Path:
    """The site's `private/`: a file and a CGI script, readable and runnable by www-data."""
    folder = site.folder / "private"
    folder.mkdir(exist_ok=True)
    folder.chmod(0o755)
    (folder / "file.bin").write_bytes(FILE)
    (folder / "file.bin").chmod(0o644)
    (folder / "whoami.sh").write_text(WHOAMI)
    (folder / "whoami.sh").chmod(0o755)
    return folder


@contextmanager
def apache_fcgid(site: djangosite.Site, workdir: Path) -> Iterator[Front]:
    """django.cgi at /django.cgi, and authorizer.cgi guarding /private/ (mod_fcgid runs both)."""
    private = private_folder(site)
    config = apache.fcgid_site(workdir, site.folder, ".cgi", site.env) + apache.authorizer_site(
        private, site.folder / "authorizer.cgi", "cgi-script .sh"
    )
    with apache.Apache(workdir, free_port(), ("fcgid", "cgi"), config) as server:
        yield Front("apache-fcgid", site.app(), "", server)


@contextmanager
def lighttpd_authorizer(site: djangosite.Site, workdir: Path) -> Iterator[Front]:
    """One process of the site (demo_site.authorizer:with_login) answers /django.cgi as a
    responder and /private/ as an authorizer; lighttpd serves what it allows from the site's folder."""
    private_folder(site)
    socket = workdir / "django.sock"
    args = ("-m", "fcgi_wsgi", "demo_site.authorizer:with_login", "--chdir", str(site.folder))
    app = App(f"{djangosite.NAME}-authorizer", argv=pythonpath.command(site.pythonpath, *args))
    guard = {"/private/": lighttpd.authorizer(lighttpd.external(socket), site.folder)}
    with (
        Backend(app, socket, workdir) as backend,
        lighttpd.Lighttpd(
            workdir,
            free_port(),
            "/django.cgi",
            lighttpd.external(socket),
            more=guard,
            modules=("mod_cgi",),
            settings='cgi.assign = (".sh" => "/bin/sh")\n',
        ) as server,
    ):
        yield Front("lighttpd", app, "", server, [backend])


BUILDERS = {"apache-fcgid": apache_fcgid, "lighttpd": lighttpd_authorizer}


@pytest.fixture(scope="module")
def guarded(request: pytest.FixtureRequest, django_site: djangosite.Site, make_workdir) -> Iterator[Front]:
    with BUILDERS[request.param](django_site, make_workdir(f"authorizer-{request.param}")) as front:
        yield front


@pytest.fixture(scope="module")
def session(guarded: Front) -> dict[str, str]:
    """The headers of a logged-in session: the login page's form, posted with the user's password."""
    page = client.get(guarded, "/django.cgi/login/")
    assert page.status == 200, page
    token = CSRF_TOKEN.search(page.body)
    assert token is not None, page
    cookies = dict(pair.split("=", 1) for pair in cookie_pairs(page))
    name, password = djangosite.USER
    form = f"csrfmiddlewaretoken={token[1].decode()}&username={name}&password={password}".encode()
    headers = {"Content-Type": FORM, "Cookie": "; ".join(f"{k}={v}" for k, v in cookies.items())}
    login = client.request(guarded, "POST", "/django.cgi/login/", form, headers)
    assert login.status == 302, login
    cookies.update(pair.split("=", 1) for pair in cookie_pairs(login))
    assert "sessionid" in cookies, login
    return {"Cookie": "; ".join(f"{k}={v}" for k, v in cookies.items())}


def cookie_pairs(response: client.Response) -> list[str]:
    return [value.split(";")[0] for value in response.header_values("Set-Cookie")]


def assert_denied(guarded: Front, response: client.Response, asked: str) -> None:
    """The view's denial: mod_fcgid's 401 with the view's header, lighttpd's the view's redirect."""
    if guarded.name == "apache-fcgid":
        assert response.status == 401, response
        assert response.headers["WWW-Authenticate"] == 'Cookie realm="Django"', response
    else:
        assert response.status == 302, response
        assert response.headers["Location"] == f"/django.cgi/login/?next={asked}", response
    assert FILE not in response.body
    assert b"REMOTE_USER" not in response.body


@pytest.mark.parametrize("asked", ["/private/file.bin", "/private/whoami.sh"])
def test_an_anonymous_session_gets_the_views_answer(guarded: Front, asked: str) -> None:
    assert_denied(guarded, client.get(guarded, asked), asked)


def test_a_session_of_a_stranger_is_anonymous(guarded: Front) -> None:
    response = client.request(guarded, "GET", "/private/file.bin", headers={"Cookie": "sessionid=forged"})
    assert_denied(guarded, response, "/private/file.bin")


def test_a_logged_in_session_gets_the_static_file(guarded: Front, session: dict[str, str]) -> None:
    response = client.request(guarded, "GET", "/private/file.bin", headers=session)
    assert response.status == 200, response
    assert hashlib.sha256(response.body).hexdigest() == hashlib.sha256(FILE).hexdigest()


def test_the_cgi_script_sees_the_user_the_authorizer_named(guarded: Front, session: dict[str, str]) -> None:
    response = client.request(guarded, "GET", "/private/whoami.sh", headers=session)
    assert response.status == 200, response
    assert response.body == f"REMOTE_USER={djangosite.USER[0]}".encode()


def test_the_authorizer_view_is_no_page_of_the_site(guarded: Front, session: dict[str, str]) -> None:
    """A client asking the view's URL itself is a responder request: a 404, not a 200 with the user."""
    for path in ("/django.cgi/authorize/", "/django.cgi/authorize-or-login/"):
        response = client.request(guarded, "GET", path, headers=session)
        assert response.status == 404, response
        assert "Variable-REMOTE_USER" not in response.headers
