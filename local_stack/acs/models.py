"""Wire bodies checked against the Call Automation SDK's own generated models.

Every request the local ACS receives is checked against the msrest model the SDK serialises it from
(azure-communication-callautomation 1.6.0, `_generated/models/_models.py`): `_attribute_map` gives each
field's JSON key and type, `_validation` its required flag and bounds, `_subtype_map` the polymorphic
discriminator, and the `__init__` annotations name the enum (`_models.AudioFormat`, ...) of a string
field. What fails is ACS's 400 with its CommunicationErrorResponse body; what passes is deserialised
with `Model.deserialize` into the SDK's typed object. The same check holds the callbacks the local
ACS posts to the generated event models (`CallConnected`, `MediaStreamingStarted`, ...).

Strictness, and why: the REST API (api-version 2026-03-12, the SDK's default) is ASP.NET with
System.Text.Json, which refuses a JSON value of the wrong type (a number for a string, "true" for a
bool) and an enum name it does not know, and reads enum names case-insensitively (as the SDK's
CaseInsensitiveEnumMeta does). Unknown properties are ignored, as System.Text.Json does by default.
"""

from __future__ import annotations

import functools
import inspect
import re
from dataclasses import dataclass
from enum import Enum
from typing import Any

from azure.communication.callautomation._generated import models as sdk
from azure.communication.callautomation._generated._utils.serialization import Model
from azure.core.exceptions import DeserializationError

from local_stack.acs.rest import AcsFailure

# The request model of each operation that has a body (terminate, hang_up, cancelAllMediaOperations, get
# and list have none): `_generated/operations/_operations.py`, `self._serialize.body(..., "<Model>")`.
REQUEST_MODELS: dict[str, type[Model]] = {
    "answer": sdk.AnswerCallRequest, "create": sdk.CreateCallRequest, "reject": sdk.RejectCallRequest,
    "redirect": sdk.RedirectCallRequest, "transfer": sdk.TransferToParticipantRequest, "play": sdk.PlayRequest,
    "recognize": sdk.RecognizeRequest, "start_media_streaming": sdk.StartMediaStreamingRequest,
    "stop_media_streaming": sdk.StopMediaStreamingRequest,
}
# AudioFormat -> the sample rate of the media socket's AudioMetadata and audio (ACS audio streaming
# quickstart: "Currently supported formats are PCM 24K mono and PCM 16K mono, with the default being
# PCM 16K mono", learn.microsoft.com/azure/communication-services/how-tos/call-automation/audio-streaming-quickstart).
SAMPLE_RATES = {sdk.AudioFormat.PCM16_K_MONO.value.lower(): 16000, sdk.AudioFormat.PCM24_K_MONO.value.lower(): 24000}
DEFAULT_SAMPLE_RATE = 16000
_ENUM_NAME = re.compile(r"_models\.(\w+)")


class SchemaError(ValueError):
    """A body that does not fit the SDK's model; the text says where and why (no values beyond enums)."""


@dataclass(frozen=True)
class StreamingOptions:
    """A call's mediaStreamingOptions, from the SDK's WebSocketMediaStreamingOptions (defaults as ACS's)."""

    transport_url: str | None
    audio_channel_type: str  # mixed | unmixed: a two-party call's one caller stream either way
    content_type: str
    start: bool  # startMediaStreaming: "false (which is the default)" (audio streaming quickstart)
    bidirectional: bool  # enableBidirectional: ACS plays the app's AudioData into the call only then
    audio_format: str
    dtmf_tones: bool  # enableDtmfTones: "When DTMF is enabled Azure Communication Services sends a DtmfData"

    @property
    def sample_rate(self) -> int:
        return SAMPLE_RATES.get(self.audio_format.lower(), DEFAULT_SAMPLE_RATE)

    @classmethod
    def of(cls, options: Any) -> StreamingOptions:
        return cls(options.transport_url, str(options.audio_channel_type), str(options.content_type or "audio"),
                   bool(options.start_media_streaming), bool(options.enable_bidirectional),
                   str(options.audio_format or sdk.AudioFormat.PCM16_K_MONO.value), bool(options.enable_dtmf_tones))


def parse_request(operation: str, body: dict[str, Any] | None) -> Any:
    """The SDK model of this operation's body (None for operations without one); AcsFailure(400) if invalid."""
    model = REQUEST_MODELS.get(operation)
    if model is None:
        return None
    try:
        return parse(model, body if body is not None else {}, "body")
    except SchemaError as exc:
        raise AcsFailure(400, "BadRequest", str(exc)) from None


def parse(model: type[Model], data: Any, where: str) -> Any:
    """`data` checked against `model` (raising SchemaError), then deserialised by the SDK."""
    check(model, data, where)
    try:
        parsed = model.deserialize(data)
    except DeserializationError as exc:  # a check above should have caught it first
        raise SchemaError(f"{where}: {exc}") from None
    return parsed


def check(model: type[Model], data: Any, where: str) -> None:
    if not isinstance(data, dict):
        raise SchemaError(f"{where}: expected a JSON object")
    model = _subtype(model, data, where)
    rules: dict[str, dict[str, Any]] = getattr(model, "_validation", {})
    for attr, desc in model._attribute_map.items():
        key, rule = desc["key"], rules.get(attr, {})
        value = data.get(key)
        at = f"{where}.{key}"
        if value is None:
            if rule.get("required"):
                raise SchemaError(f"{at}: the field is required")
            continue
        if rule.get("readonly"):
            continue
        _value(desc["type"], value, at, _enum(model.__name__, attr))
        _bounds(rule, value, at)


def _subtype(model: type[Model], data: dict[str, Any], where: str) -> type[Model]:
    """The concrete model of a polymorphic one (MediaStreamingOptions -> WebSocketMediaStreamingOptions)."""
    subtypes: dict[str, dict[str, str]] = model.__dict__.get("_subtype_map", {})
    for attr, mapping in subtypes.items():
        key = model._attribute_map[attr]["key"]
        discriminator = data.get(key)
        name = mapping.get(discriminator) if isinstance(discriminator, str) else None
        if name is None:
            raise SchemaError(f"{where}.{key}: must be one of {', '.join(mapping)}")
        concrete: type[Model] = getattr(sdk, name)
        return concrete
    return model


def _value(kind: str, value: Any, at: str, enum: type[Enum] | None) -> None:
    if kind.startswith("[") and kind.endswith("]"):
        if not isinstance(value, list):
            raise SchemaError(f"{at}: expected a JSON array")
        for i, item in enumerate(value):
            _value(kind[1:-1], item, f"{at}[{i}]", enum)
    elif kind.startswith("{") and kind.endswith("}"):
        if not isinstance(value, dict):
            raise SchemaError(f"{at}: expected a JSON object")
        for name, item in value.items():
            _value(kind[1:-1], item, f"{at}.{name}", enum)
    elif kind in _SCALARS:
        _scalar(kind, value, at, enum)
    elif kind != "object":
        check(getattr(sdk, kind), value, at)


_SCALARS = {"str": "a string", "iso-8601": "a string", "duration": "a string", "bool": "true or false",
            "int": "an integer", "long": "an integer", "float": "a number"}


def _scalar(kind: str, value: Any, at: str, enum: type[Enum] | None) -> None:
    if kind in ("str", "iso-8601", "duration"):
        fits = isinstance(value, str)
    elif kind == "bool":
        fits = isinstance(value, bool)
    else:  # a JSON true is no number to System.Text.Json
        fits = not isinstance(value, bool) and isinstance(value, int if kind in ("int", "long") else int | float)
    if not fits:
        raise SchemaError(f"{at}: expected {_SCALARS[kind]}")
    if enum is not None and value.lower() not in {member.value.lower() for member in enum}:
        raise SchemaError(f"{at}: not a valid {enum.__name__}; expected one of "
                          f"{', '.join(member.value for member in enum)}")


def _bounds(rule: dict[str, Any], value: Any, at: str) -> None:
    if "minimum" in rule and isinstance(value, int | float) and value < rule["minimum"]:
        raise SchemaError(f"{at}: must be at least {rule['minimum']}")
    if "maximum" in rule and isinstance(value, int | float) and value > rule["maximum"]:
        raise SchemaError(f"{at}: must be at most {rule['maximum']}")


@functools.cache
def _enum(model_name: str, attr: str) -> type[Enum] | None:
    """The enum a string field takes, as the SDK's `__init__` annotation names it (None: any string)."""
    for cls in getattr(sdk, model_name).__mro__:
        init = cls.__dict__.get("__init__")
        if init is None:
            continue
        parameter = inspect.signature(init).parameters.get(attr)
        if parameter is not None:
            for name in _ENUM_NAME.findall(str(parameter.annotation)):
                found = getattr(sdk, name, None)
                if isinstance(found, type) and issubclass(found, Enum):
                    return found
            return None
    return None


def event_model(event_type: str) -> type[Model] | None:
    """The SDK's generated model of a callback's `data` (`CallConnected` for Microsoft.Communication.CallConnected)."""
    found = getattr(sdk, event_type.removeprefix("Microsoft.Communication."), None)
    return found if isinstance(found, type) and issubclass(found, Model) else None
