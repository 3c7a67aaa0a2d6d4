"""`app.get_functions()` may be called once per app object, so every test shares this index.

Both go through the Python worker's own steps (local_stack/worker_index.py): `functions()` is what its loader
takes from function_app.py, `indexed()` what the local function host serves once the worker's indexing has
accepted every function (else FunctionLoadError, as the worker's start-up in Azure would fail).
"""

from __future__ import annotations

import functools
from typing import Any

from local_stack import worker_index
from local_stack.function_host import Function, index
from switchboard.settings import PROJECT_ROOT


@functools.cache
def functions() -> dict[str, Any]:
    return {f.get_function_name(): f for f in worker_index.load(PROJECT_ROOT / "function_app.py")}


@functools.cache
def indexed() -> dict[str, Function]:
    """The same functions as the local function host sees them (trigger binding, bindings, callable)."""
    return index(functions().values(), PROJECT_ROOT)
