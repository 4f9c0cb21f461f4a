"""Fixtures of the end-to-end tests: real web servers in front of the apps under test.

`front` is a running (web server, app) pair, parametrized over the whole matrix and shared by
the tests of a module. When a test fails, the logs of every server and app it used (error
logs, the app's stderr) are appended to the report.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

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
        "--app", action="append", default=[], metavar="NAME", help="test only this app (repeatable); default: all"
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
    unknown = set(wanted) - {app.name for app in apps}
    if unknown:
        raise pytest.UsageError(f"--app {sorted(unknown)}: known apps are {[a.name for a in apps]}")
    return [app for app in apps if not wanted or app.name in wanted]


def selected_fronts(config: pytest.Config) -> list[str]:
    return config.getoption("--front") or list(FRONTS)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    apps = selected_apps(metafunc.config)
    if "front" in metafunc.fixturenames:
        pairs = [(front, app) for front in selected_fronts(metafunc.config) for app in apps]
        ids = [f"{front}-{app.name}" for front, app in pairs]
        metafunc.parametrize("front", pairs, ids=ids, indirect=True, scope="module")
    elif "app" in metafunc.fixturenames:
        metafunc.parametrize("app", apps, ids=[app.name for app in apps], indirect=True, scope="module")


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
def build_app() -> Callable[[App], App]:
    """Build each app once per session (cargo is quick when nothing changed)."""
    errors: dict[str, str | None] = {}

    def build(app: App) -> App:
        if app.name not in errors:
            try:
                app.build_now()
                errors[app.name] = None
            except RuntimeError as e:
                errors[app.name] = str(e)
        if errors[app.name]:
            pytest.fail(errors[app.name], pytrace=False)
        program = shutil.which(app.argv[0])
        if program is None:
            pytest.fail(f"{app.name}: {app.argv[0]} is not an executable", pytrace=False)
        return app

    return build


@pytest.fixture(scope="module")
def app(request: pytest.FixtureRequest, build_app: Callable[[App], App]) -> App:
    return build_app(request.param)


@pytest.fixture(scope="module")
def front(request: pytest.FixtureRequest, build_app, make_workdir):
    """A web server in front of an app, started once per module for each matrix pair."""
    name, app = request.param
    build_app(app)
    with FRONTS[name](app, make_workdir(f"{name}-{app.name}")) as running:
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
