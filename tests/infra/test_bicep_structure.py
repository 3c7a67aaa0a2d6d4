"""infra/bicep holds together: every file parses, modules and parameters match across files, and the
values the code depends on (port, routes, function names, partition key) are the template's too."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from lark.exceptions import UnexpectedInput
from pycep import BicepParser

from media_host.transports.audiocodes import AudioCodesAdapter
from switchboard.call_records.cosmos import PARTITION_KEY_PATH
from switchboard.settings import Settings
from tests.infra import bicep
from tests.support.functions_index import indexed

MODULES = bicep.INFRA / "modules"


@pytest.mark.parametrize("path", bicep.bicep_files(), ids=lambda p: str(p.relative_to(bicep.INFRA)))
def test_every_bicep_file_parses(path: Path) -> None:
    parsed = bicep.parse(path)
    assert parsed["resources"] or parsed["modules"], "a Bicep file that declares nothing"
    for name, resource in parsed["resources"].items():
        assert resource["api_version"], f"{name}: API version must be pinned"


def test_the_parser_rejects_broken_bicep() -> None:
    with pytest.raises(UnexpectedInput):
        BicepParser().parse(text="resource x 'Microsoft.Storage/storageAccounts@2023-05-01' = {\n  name: \n")


def test_every_module_exists_and_every_module_file_is_used() -> None:
    called = {bicep.module_path(path, module) for path, _, module in bicep.module_calls()}
    for path in called:
        assert path.is_file(), f"module {path} is referenced but missing"
    assert set(MODULES.glob("*.bicep")) == called, "a module file nothing deploys"


@pytest.mark.parametrize(("caller", "name", "module"), bicep.module_calls(),
                         ids=lambda v: v if isinstance(v, str) else "")
def test_module_calls_pass_exactly_the_declared_parameters(caller: Path, name: str, module: dict[str, Any]) -> None:
    declared = bicep.parse(bicep.module_path(caller, module)).get("parameters", {})
    passed = set(bicep.module_config(module).get("params", {}))
    assert passed <= set(declared), f"{name}: passes undeclared {sorted(passed - set(declared))}"
    required = {p for p, spec in declared.items() if spec.get("default") is None}
    assert required <= passed, f"{name}: misses required {sorted(required - passed)}"


def test_parameters_file_matches_main() -> None:
    declared = bicep.parse(bicep.MAIN)["parameters"]
    given = bicep.parameters_file()
    assert set(given) <= set(declared), f"undeclared in main.bicep: {sorted(set(given) - set(declared))}"
    required = {p for p, spec in declared.items() if spec.get("default") is None}
    assert required <= set(given), f"required but not in main.parameters.json: {sorted(required - set(given))}"


def test_secrets_are_secure_parameters_and_never_outputs() -> None:
    parsed = bicep.parse(bicep.MAIN)
    for name in ("signingSecret", "audiocodesBotToken"):
        assert {"type": "secure"} in parsed["parameters"][name]["decorators"]
    for name, output in parsed["outputs"].items():
        assert "ecret" not in str(output["value"]), name
        assert "oken" not in str(output["value"]), name


def test_outputs_give_the_urls_a_user_pastes() -> None:
    outputs = bicep.parse(bicep.MAIN)["outputs"]
    assert outputs["AUDIOCODES_BOT_URL"]["value"].startswith("wss://")
    assert outputs["AUDIOCODES_BOT_URL"]["value"].endswith(AudioCodesAdapter.path)
    assert outputs["MEDIA_HOST_URL"]["value"].startswith("https://")
    assert outputs["FUNCTION_APP_URL"]["value"].startswith("https://")


def test_media_host_port_matches_settings() -> None:
    port = bicep.parse(MODULES / "media-host.bicep")["variables"]["port"]["value"]
    assert port == Settings.model_fields["media_host_port"].default


def test_media_host_is_always_on_probed_and_drains() -> None:
    parsed = bicep.parse(MODULES / "media-host.bicep")
    assert parsed["parameters"]["minReplicas"]["decorators"][0] == {"type": "min_value", "argument": 1}
    probes = parsed["variables"]["probes"]["value"]["operator"]["operands"]["true_value"]
    paths = {p["type"]: p["httpGet"]["path"] for p in probes}
    assert paths == {"Startup": "/health", "Readiness": "/ready", "Liveness": "/health"}
    routes = (bicep.ROOT / "media_host" / "server.py").read_text()
    assert '"/health": self._health' in routes
    assert '"/ready": self._ready' in routes
    grace = parsed["variables"]["hostSettings"]["value"]["function"]["parameters"]["arg_2"]["SHUTDOWN_GRACE_SECONDS"]
    drain = grace["function"]["parameters"]["value_to_convert"]["operator"]
    assert drain["type"] == "substract"
    assert drain["operands"]["operand_1"] == "terminationGracePeriodSeconds"
    assert drain["operands"]["operand_2"] > 0


def test_the_functions_the_template_names_exist() -> None:
    functions = indexed()
    app = bicep.parse(MODULES / "function-app.bicep")["resources"]["site"]["config"]["properties"]
    always_ready = [entry["name"] for entry in app["functionAppConfig"]["scaleAndConcurrency"]["alwaysReady"]]
    subscribed = bicep.parse(MODULES / "incoming-call.bicep")["parameters"]["functionName"]["default"]
    assert always_ready == [f"function:{subscribed}", "durable"]  # 'durable': the Flex group of every durable trigger
    assert functions[subscribed].trigger["type"] == "eventGridTrigger"


def test_call_records_container_matches_the_code() -> None:
    cosmos = bicep.parse(MODULES / "cosmos.bicep")["resources"]["container"]["config"]["properties"]["resource"]
    assert cosmos["partitionKey"]["paths"] == [PARTITION_KEY_PATH]
    variables = bicep.parse(bicep.MAIN)["variables"]
    assert variables["cosmosDatabase"]["value"] == Settings.model_fields["cosmos_database"].default
    assert variables["cosmosContainer"]["value"] == Settings.model_fields["cosmos_container"].default


def test_no_broad_roles() -> None:
    owner, contributor = "8e3af657-a8ff-443c-a75c-2fe8c4bcb635", "b24988ac-6180-42a0-ab88-20f7382dd24c"
    for path in bicep.bicep_files():
        text = path.read_text()
        assert owner not in text, f"{path.name} grants Owner"
        assert contributor not in text, f"{path.name} grants Contributor"


def test_azd_project_matches_the_template() -> None:
    project = yaml.safe_load((bicep.ROOT / "azure.yaml").read_text())
    assert (bicep.ROOT / project["infra"]["path"] / f"{project['infra']['module']}.bicep") == bicep.MAIN
    services = project["services"]
    docker = services["media-host"]["docker"]
    assert (bicep.ROOT / docker["path"]).is_file()
    assert (bicep.ROOT / docker["context"]).is_dir()
    tagged = {
        bicep.parse(MODULES / "function-app.bicep")["resources"]["site"]["config"]["tags"]["function"]["parameters"]
        ["arg_2"]["'azd-service-name'"],
        bicep.parse(MODULES / "media-host.bicep")["resources"]["app"]["config"]["tags"]["function"]["parameters"]
        ["arg_2"]["'azd-service-name'"],
    }
    assert tagged == set(services), "azd finds each service's resource by its azd-service-name tag"
    exists_var = "SERVICE_" + "media-host".upper().replace("-", "_") + "_RESOURCE_EXISTS"
    assert exists_var in bicep.parameters_file()["mediaHostExists"]["value"]
    for hook in project["hooks"].values():
        script = bicep.ROOT / hook["posix"]["run"]
        assert script.is_file(), f"{script} is missing"
        assert os.access(script, os.X_OK), f"{script} must be executable"


def test_hooks_set_what_the_parameters_file_reads() -> None:
    params = bicep.parameters_file()
    pre = (bicep.ROOT / "infra/hooks/preprovision.sh").read_text()
    post = (bicep.ROOT / "infra/hooks/postdeploy.sh").read_text()
    for name in ("SWITCHBOARD_SIGNING_SECRET", "SWITCHBOARD_AUDIOCODES_BOT_TOKEN"):
        assert f"ensure_secret {name}" in pre
        assert any(f"${{{name}}}" in str(p["value"]) for p in params.values())
    assert "SWITCHBOARD_SUBSCRIBE_INCOMING_CALLS" in str(params["subscribeIncomingCalls"]["value"])
    assert "azd env set SWITCHBOARD_SUBSCRIBE_INCOMING_CALLS true" in post
    assert "INCOMING_CALLS_SUBSCRIBED" in bicep.parse(bicep.MAIN)["outputs"]
