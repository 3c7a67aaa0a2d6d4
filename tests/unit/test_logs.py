from __future__ import annotations

import io
import json
import logging

import pytest

from switchboard.logs import JsonFormatter, TextFormatter, _ContextFilter, bind_call, mask_phone, pseudonymise


def _capture(formatter: logging.Formatter) -> tuple[logging.Logger, io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    handler.addFilter(_ContextFilter())
    logger = logging.getLogger(f"test.{id(formatter)}")
    logger.handlers = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    return logger, stream


def test_json_lines_carry_call_and_correlation_ids() -> None:
    logger, stream = _capture(JsonFormatter())
    with bind_call("call-123", "corr-456"):
        logger.info("answered", extra={"scenario": "banking"})
    logger.info("outside")
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["call_id"] == "call-123"
    assert first["correlation_id"] == "corr-456"
    assert first["scenario"] == "banking"
    assert first["msg"] == "answered"
    assert "call_id" not in second


def test_text_lines_are_one_readable_line() -> None:
    logger, stream = _capture(TextFormatter())
    with bind_call("abcdef0123456789"):
        logger.info("turn done", extra={"ms": 412})
    line = stream.getvalue().strip()
    assert "\n" not in line
    assert "[abcdef01]" in line
    assert line.endswith("turn done  ms=412")


@pytest.mark.parametrize(("raw", "masked"), [("+14255550123", "+1***23"), ("4:+14255550123", "+1***23"),
                                             ("", ""), (None, ""), ("123", "***")])
def test_mask_phone_hides_the_number(raw: str | None, masked: str) -> None:
    assert mask_phone(raw) == masked


def test_pseudonymise_is_stable_and_opaque() -> None:
    assert pseudonymise("+14255550123") == pseudonymise("+14255550123")
    assert "4255550123" not in pseudonymise("+14255550123")
