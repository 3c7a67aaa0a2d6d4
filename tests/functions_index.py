"""`app.get_functions()` may be called once per app object, so every test shares this index."""

from __future__ import annotations

import functools
from typing import Any

import function_app
from local_stack.function_host import Function, index


@functools.cache
def functions() -> dict[str, Any]:
    return {f.get_function_name(): f for f in function_app.app.get_functions()}


@functools.cache
def indexed() -> dict[str, Function]:
    """The same functions as the local function host sees them (trigger binding, bindings, callable)."""
    return index(functions().values())
