"""`app.get_functions()` may be called once per app object, so every test shares this index."""

from __future__ import annotations

import functools
from typing import Any

import function_app


@functools.cache
def functions() -> dict[str, Any]:
    return {f.get_function_name(): f for f in function_app.app.get_functions()}
