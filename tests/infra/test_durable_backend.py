"""Durable Functions' backend: host.json keeps a raised event's wait short on Azure Storage, the optional
Durable Task Scheduler is wired to the same task hub, and docs/durable.md quotes what host.json sets.

Names and limits: AzureStorageOptions (Azure/azure-functions-durable-extension, Options/AzureStorageOptions.cs:
MaxQueuePollingInterval default 30 s, must be > 0; PartitionCount 1 to 16); the host.json override form
AzureFunctionsJobHost__<path> (learn.microsoft.com/azure/azure-functions/functions-host-json#override-hostjson-values).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any

from tests.infra import bicep

HOST_JSON = bicep.ROOT / "host.json"
DOC = bicep.ROOT / "docs" / "durable.md"
OVERRIDE = "AzureFunctionsJobHost__"
MAX_WAIT = dt.timedelta(seconds=2)  # the longest an event raised to an idle call may wait for a poll


def host() -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(HOST_JSON.read_text())
    return parsed


def timespan(value: str) -> dt.timedelta:
    """A host.json TimeSpan, hh:mm:ss."""
    hours, minutes, seconds = (int(part) for part in value.split(":"))
    return dt.timedelta(hours=hours, minutes=minutes, seconds=seconds)


def durable_settings() -> dict[str, str]:
    """The app settings main.bicep adds for the Durable Task Scheduler backend."""
    main = bicep.main_scope()
    return main.settings(main.variables["durableSettings"]["value"]["operator"]["operands"]["true_value"])


def test_azure_storage_polls_idle_queues_at_most_every_two_seconds() -> None:
    provider = host()["extensions"]["durableTask"]["storageProvider"]
    assert provider["type"] == "AzureStorage"
    interval = timespan(provider["maxQueuePollingInterval"])
    assert dt.timedelta(0) < interval <= MAX_WAIT, "the default is 30 s: a hang-up could wait that long"
    assert 1 <= provider["partitionCount"] <= 16


def test_the_doc_quotes_what_host_json_sets() -> None:
    interval = host()["extensions"]["durableTask"]["storageProvider"]["maxQueuePollingInterval"]
    text = DOC.read_text()
    assert re.search(rf"maxQueuePollingInterval` is\s+`{interval}`", text), "docs/durable.md quotes another interval"
    seconds = int(timespan(interval).total_seconds())
    assert f"3,600 s ÷ {seconds} s = {3600 // seconds:,}" in text, "the idle-poll arithmetic is for another interval"


def test_the_scheduler_serves_the_task_hub_host_json_names() -> None:
    hub = host()["extensions"]["durableTask"]["hubName"]
    assert bicep.main_scope().variables["durableTaskHub"]["value"] == hub
    module = bicep.module_config(bicep.parse(bicep.MAIN)["modules"]["durableScheduler"])
    assert module["params"]["taskHubName"] == "durableTaskHub"


def test_the_backend_defaults_to_azure_storage() -> None:
    params = bicep.parse(bicep.MAIN)["parameters"]
    assert params["durableBackend"]["default"] == "azureStorage"
    assert {"type": "allowed", "argument": ["azureStorage", "durableTaskScheduler"]} in (
        params["durableBackend"]["decorators"])
    assert bicep.parameters_file()["durableBackend"]["value"] == "${SWITCHBOARD_DURABLE_BACKEND=azureStorage}"


def test_scheduler_settings_override_paths_host_json_has() -> None:
    settings = durable_settings()
    overrides = {name: value for name, value in settings.items() if name.startswith(OVERRIDE)}
    assert overrides, "the scheduler backend overrides host.json's provider"
    for name in overrides:
        node: Any = host()
        for key in name.removeprefix(OVERRIDE).split("__"):
            assert isinstance(node, dict), name
            assert key in node, f"{name}: host.json has no {key!r} there"
            node = node[key]
    provider = "AzureFunctionsJobHost__extensions__durableTask__storageProvider__"
    assert overrides[provider + "type"] == "azureManaged"
    connection = overrides[provider + "connectionStringName"]
    assert re.fullmatch(r"Endpoint=[^;]+;Authentication=ManagedIdentity", settings[connection])


def test_the_function_app_may_use_the_scheduler() -> None:
    access = bicep.parse(bicep.INFRA / "modules" / "access.bicep")
    assert access["variables"]["roles"]["value"]["durableTaskDataContributor"] == "0ad04412-c4d5-4796-b79c-f76d14c8d402"
    grant = access["resources"]["durableRoles"]
    assert "durableTaskDataContributor" in json.dumps(grant)
