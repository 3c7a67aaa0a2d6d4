"""Validators for what callers say, for tool parameters: `Annotated[str, BeforeValidator(digits_only)]`.

Speech-to-text keeps the pauses callers make while reading numbers ("45 67", "12-34"), and people
rarely say the dash in a reference ("l 2001" for L-2001). These normalise before validation, so the
pattern in the JSON schema stays strict.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any


def digits_only(value: Any) -> Any:
    """ "45 67", "4-5-6-7" and 4567 become "4567"; anything else is left for validation to reject."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return re.sub(r"[\s.\-]", "", value) if isinstance(value, str) else value


def reference(prefix: str, digits: int = 4) -> Callable[[Any], Any]:
    """A validator for ids like L-2001: accepts "l 2001", "L2001" and "2001"."""
    shape = re.compile(rf"{re.escape(prefix)}?[0-9]{{{digits}}}")

    def normalise(value: Any) -> Any:
        if not isinstance(value, str):
            return value
        compact = re.sub(r"[\s\-]", "", value).upper()
        return f"{prefix}-{compact.removeprefix(prefix)}" if shape.fullmatch(compact) else value

    return normalise
