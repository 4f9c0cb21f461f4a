"""`--front` and `--app` for tests outside the matrix, which build their own (front, app) set-ups."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import pytest


def wanted(config: pytest.Config, front: str, app: str) -> bool:
    """Whether the command line selects this front and app (no `--front`/`--app`: all)."""
    fronts = config.getoption("--front")
    apps = config.getoption("--app")
    return (not fronts or front in fronts) and (not apps or app in apps)


def parametrize_apps(metafunc: pytest.Metafunc, fixture: str, apps: list, front: str) -> None:
    """Parametrizes `fixture` (module scope) over the `apps` the command line selects behind `front`."""
    chosen = [app for app in apps if wanted(metafunc.config, front, app.name)]
    metafunc.parametrize(fixture, chosen, ids=[app.name for app in chosen], indirect=True, scope="module")


def params(config: pytest.Config, pairs: dict[str, tuple[str, str]]) -> list[str]:
    """The ids among `pairs` (id → (front, app)) that the command line selects."""
    return [name for name, (front, app) in pairs.items() if wanted(config, front, app)]


def module_apps(front: str, **fixtures: Iterable[str]) -> tuple[Callable, ...]:
    """A test module's apps: each keyword names a module-scoped fixture, parametrized over the
    apps of those names that the command line selects behind `front`, each built once. Returns
    the module's `pytest_generate_tests` hook, then the fixtures in the keywords' order:

        pytest_generate_tests, status_app = selection.module_apps("nginx", status_app=APPS)
    """

    def generate(metafunc: pytest.Metafunc) -> None:
        from ..conftest import selected_apps

        for fixture, names in fixtures.items():
            if fixture in metafunc.fixturenames:
                apps = [app for app in selected_apps(metafunc.config) if app.name in names]
                parametrize_apps(metafunc, fixture, apps, front)

    def built(fixture: str) -> Callable:
        @pytest.fixture(scope="module", name=fixture)
        def app(request: pytest.FixtureRequest, build_app: Callable) -> object:
            return build_app(request.param)

        return app

    return (generate, *(built(fixture) for fixture in fixtures))


def one_app(request: pytest.FixtureRequest, build_app: Callable, name: str) -> Any:
    """The app `name`, built, if the command line selects it; else the test is skipped."""
    from ..conftest import selected_apps

    app = next((app for app in selected_apps(request.config) if app.name == name), None)
    if app is None:
        pytest.skip(f"{name} not selected")
    return build_app(app)
