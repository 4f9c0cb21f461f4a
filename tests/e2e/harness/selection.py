"""`--front` and `--app` for tests outside the matrix, which build their own (front, app) set-ups."""

from __future__ import annotations

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
