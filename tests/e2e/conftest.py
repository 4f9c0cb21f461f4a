"""Fixtures of the end-to-end tests: real web servers in front of the apps under test.

`front` is a running (web server, app) pair, parametrized over the whole matrix and shared by
the tests of a module; `django_front` the same for the Django site (test_django.py). When a
test fails, the logs of every server and app it used (error logs, the app's stderr) are
appended to the report.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from .harness import djangosite
from .harness.apps import REGISTRY, App, from_spec
from .harness.fronts import FRONTS


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("e2e", "end-to-end matrix")
    group.addoption(
        "--front",
        action="append",
        default=[],
        choices=sorted(FRONTS),
        help="test only this web-server front (repeatable); default: all",
    )
    group.addoption(
        "--app",
        action="append",
        default=[],
        metavar="NAME",
        help=f"test only this app (repeatable; `{djangosite.NAME}` is the Django site); default: all",
    )
    group.addoption(
        "--app-cmd",
        action="append",
        default=[],
        metavar="NAME=COMMAND",
        help="also test this command line as an echo app (repeatable)",
    )
    group.addoption(
        "--keep-workdir", action="store_true", help="keep the configs and logs under /tmp/fcgi-e2e-* after the run"
    )


def selected_apps(config: pytest.Config) -> list[App]:
    apps = [*REGISTRY, *(from_spec(spec) for spec in config.getoption("--app-cmd"))]
    wanted = config.getoption("--app")
    known = [app.name for app in apps] + [djangosite.NAME]
    unknown = set(wanted) - set(known)
    if unknown:
        raise pytest.UsageError(f"--app {sorted(unknown)}: known apps are {known}")
    return [app for app in apps if not wanted or app.name in wanted]


def selected_fronts(config: pytest.Config) -> list[str]:
    return config.getoption("--front") or list(FRONTS)


def selected_django_fronts(config: pytest.Config) -> list[str]:
    wanted = config.getoption("--app")
    if wanted and djangosite.NAME not in wanted:
        return []
    return [name for name in selected_fronts(config) if name in djangosite.FRONTS]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    apps = selected_apps(metafunc.config)
    if "front" in metafunc.fixturenames:
        pairs = [(front, app) for front in selected_fronts(metafunc.config) for app in apps]
        ids = [f"{front}-{app.name}" for front, app in pairs]
        metafunc.parametrize("front", pairs, ids=ids, indirect=True, scope="module")
    elif "app" in metafunc.fixturenames:
        metafunc.parametrize("app", apps, ids=[app.name for app in apps], indirect=True, scope="module")
    elif "django_front" in metafunc.fixturenames:
        fronts = selected_django_fronts(metafunc.config)
        ids = [f"{front}-{djangosite.NAME}" for front in fronts]
        metafunc.parametrize("django_front", fronts, ids=ids, indirect=True, scope="module")


@pytest.fixture(scope="session")
def workroot(request: pytest.FixtureRequest) -> Iterator[Path]:
    """A world-readable directory under /tmp: Apache's children (www-data) execute from it."""
    root = Path(tempfile.mkdtemp(prefix="fcgi-e2e-", dir="/tmp"))
    root.chmod(0o755)
    yield root
    if not request.config.getoption("--keep-workdir"):
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def make_workdir(workroot: Path) -> Callable[[str], Path]:
    """A fresh world-readable directory for one server setup."""

    def make(name: str) -> Path:
        path = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=workroot))
        path.chmod(0o755)
        return path

    return make


@pytest.fixture(scope="session")
def build_app(workroot: Path) -> Callable[[App], App]:
    """Build and set up each app once per session (cargo is quick when nothing changed).

    Returns the App to run: an app with a `setup` gets its command line there.
    """
    built: dict[str, App | str] = {}

    def build(app: App) -> App:
        if app.name not in built:
            try:
                built[app.name] = app.build_now(workroot)
            except RuntimeError as e:
                built[app.name] = str(e)
        ready = built[app.name]
        if isinstance(ready, str):
            pytest.fail(ready, pytrace=False)
        if shutil.which(ready.argv[0]) is None:
            pytest.fail(f"{app.name}: {ready.argv[0]} is not an executable", pytrace=False)
        return ready

    return build


@pytest.fixture(scope="module")
def app(request: pytest.FixtureRequest, build_app: Callable[[App], App]) -> App:
    return build_app(request.param)


@pytest.fixture(scope="module")
def front(request: pytest.FixtureRequest, build_app, make_workdir):
    """A web server in front of an app, started once per module for each matrix pair."""
    name, app = request.param
    app = build_app(app)
    with FRONTS[name](app, make_workdir(f"{name}-{app.name}")) as running:
        yield running


@pytest.fixture(scope="session")
def django_site(workroot: Path) -> djangosite.Site:
    """The Django example site and its packages, installed once per session for www-data."""
    try:
        return djangosite.install(workroot)
    except RuntimeError as e:
        pytest.fail(f"installing the Django site failed: {e}", pytrace=False)


@pytest.fixture(scope="module")
def django_front(request: pytest.FixtureRequest, django_site: djangosite.Site, make_workdir):
    """A web server in front of the Django site, started once per module for each server."""
    name = request.param
    with djangosite.FRONTS[name](django_site, make_workdir(f"{name}-{djangosite.NAME}")) as running:
        yield running


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> pytest.TestReport:
    """On failure, append the logs of every front the test used (see Front.diagnostics)."""
    report = yield
    if report.failed:
        for value in getattr(item, "funcargs", {}).values():
            diagnostics = getattr(value, "diagnostics", None)
            if callable(diagnostics):
                for title, text in diagnostics():
                    report.sections.append((title, text))
    return report
