"""The Call Automation client, built once per worker from settings (cold starts drop calls).

Key auth signs each request with HMAC; without a key the managed identity is used. An `http://`
endpoint (the local ACS of the embedded stack) is passed to the constructor as is: the SDK's
`from_connection_string` would force https.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from switchboard.settings import Settings, SettingsError

if TYPE_CHECKING:
    from azure.communication.callautomation.aio import CallAutomationClient


def acs_endpoint_and_key(settings: Settings) -> tuple[str, str | None]:
    """The ACS endpoint and its access key (None: managed identity)."""
    if settings.acs_connection_string is not None:
        parts = dict(p.split("=", 1) for p in settings.acs_connection_string.get_secret_value().split(";") if "=" in p)
        return parts["endpoint"].rstrip("/"), parts["accesskey"]
    if settings.acs_endpoint is None:
        raise SettingsError("Invalid settings: ACS_CONNECTION_STRING or ACS_ENDPOINT is required to answer calls")
    key = settings.acs_access_key.get_secret_value() if settings.acs_access_key is not None else None
    return settings.acs_endpoint, key


def acs_client(settings: Settings) -> CallAutomationClient:
    # Imported here: the SDK is heavy, and only the functions that talk to ACS need it.
    from azure.communication.callautomation.aio import CallAutomationClient  # noqa: PLC0415
    from azure.core.credentials import AzureKeyCredential  # noqa: PLC0415

    endpoint, key = acs_endpoint_and_key(settings)
    if key is not None:
        return CallAutomationClient(endpoint, AzureKeyCredential(key))
    from azure.identity.aio import DefaultAzureCredential  # noqa: PLC0415

    return CallAutomationClient(endpoint, DefaultAzureCredential())
