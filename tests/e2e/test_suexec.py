"""Shared hosting: two users' Django sites under /~alice/django/ and /~bob/django/, run by Apache
through suexec as those users, under mod_fcgid and under plain CGI (harness/suexec.py).

The seed's `RewriteRule ^/(~[^/]+)/django/(.*)$ /$1/django/django.cgi/$2 [PT]` maps each
site's URLs onto its django.cgi; Django takes SCRIPT_NAME from mod_rewrite's SCRIPT_URL, so the
URL resolver sees the path below `/~user/django`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import pytest

from .harness import client, djangosite, selection, suexec

TIMEOUT = 30.0
FORM = "application/x-www-form-urlencoded"
CSRF_TOKEN = re.compile(rb'name="csrfmiddlewaretoken" value="([^"]+)"')
MODES = {name: (name, djangosite.NAME) for name in suexec.HANDLERS}
ROLES = ("alice", "bob")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "hosting" in metafunc.fixturenames:
        modes = selection.params(metafunc.config, MODES)
        metafunc.parametrize("hosting", modes, indirect=True, scope="module")


@pytest.fixture(scope="module")
def tenants(django_site: djangosite.Site) -> Iterator[suexec.Tenants]:
    try:
        with suexec.tenants(django_site) as created:
            yield created
    except suexec.SuexecMissing as e:
        pytest.fail(str(e), pytrace=False)


@pytest.fixture(scope="module")
def hosting(request: pytest.FixtureRequest, tenants: suexec.Tenants, make_workdir) -> Iterator[suexec.Hosting]:
    with suexec.hosting(tenants, request.param, make_workdir(f"suexec-{request.param}")) as running:
        yield running


def user(hosting: suexec.Hosting, role: str) -> suexec.User:
    return hosting.tenants.users[ROLES.index(role)]


def get(hosting: suexec.Hosting, path: str) -> client.Response:
    return client.get(hosting, path, timeout=TIMEOUT)


def test_suexec_rules(hosting: suexec.Hosting) -> None:
    """What the set-up relies on, as this suexec was compiled: the userdir suffix, Apache's user,
    and uids high enough; the sites live outside AP_DOC_ROOT, admitted by the userdir rule."""
    tenants = hosting.tenants
    rules = tenants.rules
    assert rules["AP_USERDIR_SUFFIX"] == "public_html", rules
    assert rules["AP_HTTPD_USER"] == "www-data", rules
    for someone in tenants.users:
        assert someone.uid >= int(rules["AP_UID_MIN"]) and someone.gid >= int(rules["AP_GID_MIN"]), rules
        assert not someone.site.is_relative_to(rules["AP_DOC_ROOT"]), rules


@pytest.mark.parametrize("role", ROLES)
def test_each_site_runs_as_its_user(hosting: suexec.Hosting, role: str) -> None:
    owner = user(hosting, role)
    before = hosting.tenants.log_size()
    response = get(hosting, f"{owner.prefix}/whoami/")
    assert response.status == 200, f"{response!r}{hosting.explain()}"
    whoami = json.loads(response.body)
    path = f"{owner.prefix}/whoami/"
    expected = {"uid": owner.uid, "script_name": owner.prefix, "path_info": "/whoami/", "path": path}
    assert {key: whoami[key] for key in expected} == expected, hosting.explain()
    if hosting.name == "apache-cgi":  # one exec per request; mod_fcgid may reuse a process
        logged = f"uid: ({owner.uid}/{owner.name}) gid: ({owner.gid}/{owner.name}) cmd: django.cgi"
        assert any(line.endswith(logged) for line in hosting.tenants.log_since(before)), hosting.explain()


@pytest.mark.parametrize("role", ROLES)
def test_url_resolver_sees_the_path_below_the_site(hosting: suexec.Hosting, role: str) -> None:
    owner = user(hosting, role)
    response = get(hosting, f"{owner.prefix}/echo-path/a/b%20c/")
    assert response.status == 200, f"{response!r}{hosting.explain()}"
    expected = {"rest": "a/b c/", "path_info": "/echo-path/a/b c/", "path": f"{owner.prefix}/echo-path/a/b c/"}
    assert json.loads(response.body) == expected
    missing = get(hosting, f"{owner.prefix}/no/such/page/")
    assert missing.status == 404, missing


@pytest.mark.parametrize("role", ROLES)
def test_form_post_with_csrf(hosting: suexec.Hosting, role: str) -> None:
    owner = user(hosting, role)
    page = get(hosting, f"{owner.prefix}/form/")
    assert page.status == 200, f"{page!r}{hosting.explain()}"
    cookie = [value.split(";")[0] for value in page.header_values("Set-Cookie") if value.startswith("csrftoken=")]
    token = CSRF_TOKEN.search(page.body)
    assert cookie and token, page
    body = f"csrfmiddlewaretoken={token[1].decode()}&name={role}".encode()
    headers = {"Content-Type": FORM, "Cookie": cookie[0]}
    response = client.request(hosting, "POST", f"{owner.prefix}/form/", body, headers, timeout=TIMEOUT)
    assert (response.status, response.body) == (200, f"Hello, {role}!".encode()), response


def test_suexec_strips_the_environment(hosting: suexec.Hosting) -> None:
    """The config hands PYTHONPATH (and a marker) to the app the usual way: `FcgidInitialEnv` under
    mod_fcgid, `SetEnv` under mod_cgi. suexec drops both, HOME too, and sets its own PATH; the
    CGI variables pass."""
    owner = user(hosting, "alice")
    if hosting.name == "apache-fcgid":
        response = get(hosting, f"{owner.prefix}/whoami/")
        assert response.status == 200, f"{response!r}{hosting.explain()}"
        pids = suexec.processes_of(owner.uid)
        assert pids, f"no process runs as {owner.name}"
        environments = [suexec.environment_of(pid) for pid in pids]
    else:
        response = get(hosting, f"/~{owner.name}/env.cgi")
        assert response.status == 200, f"{response!r}{hosting.explain()}"
        environments = [dict(line.partition("=")[::2] for line in response.body.decode().splitlines())]
        assert environments[0]["REQUEST_URI"] == f"/~{owner.name}/env.cgi"
        assert environments[0]["SCRIPT_FILENAME"] == str(owner.public_html / "env.cgi")
    for environment in environments:
        assert environment["PATH"] == hosting.tenants.rules["AP_SAFE_PATH"], environment
        for name in [*suexec.DROPPED_ENV, "HOME"]:
            assert name not in environment, environment


@pytest.mark.parametrize("rule", sorted(suexec.REFUSALS))
def test_suexec_refuses_unsafe_programs(hosting: suexec.Hosting, rule: str) -> None:
    """A django.cgi that breaks one of suexec's rules never runs: a 500, and suexec says why."""
    owner = user(hosting, "alice")
    program = hosting.tenants.refused[rule]
    before = hosting.tenants.log_size()
    response = get(hosting, f"/~{owner.name}/{program.parent.name}/django.cgi/whoami/")
    assert response.status == 500, f"{response!r}{hosting.explain()}"
    if rule == "program-of-another-user":  # this line names the uids, not the path
        other = user(hosting, "bob")
        detail = f"({owner.uid}/{owner.gid}) or program ({other.uid}/{owner.gid})"
    else:
        detail = str(program.parent)
    said = [line for line in hosting.tenants.log_since(before) if suexec.REFUSALS[rule] in line and detail in line]
    assert said, f"suexec did not log {suexec.REFUSALS[rule]!r} for {detail}{hosting.explain()}"
