"""function_app.py as the Python language worker indexes it, through the worker's own code.

The worker is azure-functions-runtime 1.3.0 (requirements-worker.txt; azure_functions_runtime/loader.py
`process_indexed_function`, functions.py `Registry.add_indexed_function`), driven by local_stack/worker_index.py.
A function it refuses fails the worker's start-up: in Azure and under `func start` no function of the app
loads. The worker bundled for Python 3.11 (azure-functions-python-worker 4.x, azure_functions_worker/functions.py)
runs the same checks.
"""

from __future__ import annotations

import importlib.metadata
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from local_stack import function_host, worker_index
from orchestrations import Activity
from switchboard.settings import PROJECT_ROOT
from tests.support.functions_index import functions

APPS = Path(__file__).resolve().parents[1] / "fixtures" / "worker_apps"

# The worker's messages, word for word (functions.py, FunctionLoadError and validate_function_params).
REFUSALS = {
    "refused_annotation_app": "cannot load the echo function: binding payload has invalid non-type annotation "
                              "dict[str, typing.Any]",
    "unbound_parameter_app": "cannot load the echo function: the following parameters are declared in Python but "
                             "not in the function definition (function.json or function decorators):  {'extra'}",
}


@pytest.fixture
def load_app(monkeypatch: pytest.MonkeyPatch) -> Callable[[str], list[Any]]:
    """A fixture app's functions, as the worker's loader imports them (a fresh module: one get_functions())."""
    monkeypatch.syspath_prepend(str(APPS))

    def load(name: str) -> list[Any]:
        monkeypatch.delitem(sys.modules, name, raising=False)
        return worker_index.load(APPS / f"{name}.py")

    return load


def test_every_function_of_function_app_loads_in_the_python_worker() -> None:
    metadata = worker_index.index(list(functions().values()), PROJECT_ROOT)
    assert [m.name for m in metadata] == list(functions())
    loaded = {m.name: m for m in metadata}
    for activity in Activity:  # call_session's six activities: transfer, hang-up, media, notify, record, clean
        bindings = loaded[activity.value].bindings
        assert bindings["payload"].type == "activityTrigger"
    assert loaded["call_session"].bindings["context"].type == "orchestrationTrigger"


@pytest.mark.parametrize("app", sorted(REFUSALS))
def test_the_worker_refuses_a_bad_app_with_its_own_message(app: str, load_app: Callable[[str], list[Any]]) -> None:
    with pytest.raises(worker_index.FunctionLoadError) as refused:
        worker_index.index(load_app(app), APPS)
    assert str(refused.value) == REFUSALS[app]


@pytest.mark.parametrize("app", sorted(REFUSALS))
def test_the_local_function_host_indexes_through_the_worker(app: str, load_app: Callable[[str], list[Any]]) -> None:
    with pytest.raises(worker_index.FunctionLoadError) as refused:
        function_host.index(load_app(app), APPS)
    assert str(refused.value) == REFUSALS[app]


def test_the_worker_is_the_pinned_package() -> None:
    lines = (PROJECT_ROOT / "requirements-worker.txt").read_text().splitlines()
    pins = dict(line.split("#")[0].strip().split("==") for line in lines if line.split("#")[0].strip())
    assert "azure-functions-runtime" in pins
    for name, version in pins.items():
        assert importlib.metadata.version(name) == version, f"{name}: make venv installs requirements-worker.txt"
    from azure_functions_runtime.functions import FunctionLoadError  # type: ignore[import-untyped]

    assert worker_index.FunctionLoadError is FunctionLoadError  # the worker's class, not a copy
