"""docs/deploy.md can be followed without guessing: every name, parameter, output, file, make target and
azd service it mentions exists."""

from __future__ import annotations

import functools
import re
import subprocess

import pytest
import yaml

from switchboard.settings import Settings
from tests.infra import bicep

DOC = bicep.ROOT / "docs" / "deploy.md"
AZD_BUILTINS = {"AZURE_ENV_NAME", "AZURE_LOCATION"}  # set by azd itself
CODE_SPANS = re.compile(r"`([^`\n]+)`")
FENCES = re.compile(r"```.*?```", re.DOTALL)


def doc_text() -> str:
    return DOC.read_text()


def inline_code() -> list[str]:
    return CODE_SPANS.findall(FENCES.sub("", doc_text()))


def environment_variables() -> set[str]:
    """What the parameters file reads from the azd environment."""
    return set(re.findall(r"\$\{([A-Z_]+)", bicep.PARAMETERS.read_text()))


def known_upper_names() -> set[str]:
    main = bicep.parse(bicep.MAIN)
    return (
        {name.upper() for name in Settings.model_fields}
        | set(main["outputs"])
        | environment_variables()
        | AZD_BUILTINS
    )


def bicep_parameters() -> set[str]:
    """Every parameter of every Bicep file, and the values an `@allowed` list gives it."""
    names = set()
    for path in bicep.bicep_files():
        for name, spec in bicep.parse(path).get("parameters", {}).items():
            names.add(name)
            for decorator in spec.get("decorators", []):
                if decorator.get("type") == "allowed":
                    names |= {str(value) for value in decorator["argument"]}
    return names


def test_every_upper_case_name_exists() -> None:
    names = {token for span in inline_code() for token in re.findall(r"\b[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+\b", span)}
    assert names, "the scan found nothing: the pattern is broken"
    unknown = names - known_upper_names()
    assert not unknown, f"docs/deploy.md names settings, outputs or variables that do not exist: {sorted(unknown)}"


def test_every_bicep_parameter_named_exists() -> None:
    camel = {span for span in inline_code() if re.fullmatch(r"[a-z]+(?:[A-Z][a-z0-9]*)+", span)}
    others = {"remoteBuild", "botName", "immutableResourceId"}  # azure.yaml, the AudioCodes wire, ACS properties
    unknown = camel - bicep_parameters() - others
    assert not unknown, f"docs/deploy.md names Bicep parameters that do not exist: {sorted(unknown)}"
    assert "remoteBuild" in (bicep.ROOT / "azure.yaml").read_text()
    assert "botName" in (bicep.ROOT / "media_host/transports/audiocodes.py").read_text()
    assert "immutableResourceId" in (bicep.INFRA / "modules/communication.bicep").read_text()


def test_every_parameter_file_variable_is_documented() -> None:
    text = doc_text()
    missing = {name for name in environment_variables() if f"`{name}`" not in text}
    assert not missing, f"docs/deploy.md does not explain {sorted(missing)}"


def test_every_output_is_documented() -> None:
    text = doc_text()
    missing = {name for name in bicep.parse(bicep.MAIN)["outputs"] if name not in text} - {"AZURE_LOCATION",
                                                                                              "AZURE_TENANT_ID"}
    assert not missing, f"docs/deploy.md does not mention the outputs {sorted(missing)}"


def test_every_module_is_described() -> None:
    text = doc_text()
    for module in (bicep.INFRA / "modules").glob("*.bicep"):
        assert f"`{module.name}`" in text, f"{module.name} is missing from 'What gets deployed'"


@functools.cache
def repository_files() -> list[str]:
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=bicep.ROOT,
                            capture_output=True, text=True, check=True)
    return listed.stdout.splitlines()


def file_spans() -> list[str]:
    """Code spans that name a file or a directory (not URLs, not placeholders)."""
    spans = {s for s in inline_code() if re.search(r"\.(bicep|json|sh|yaml|py|md)$|/$", s)}
    return sorted(s for s in spans if "<" not in s and " " not in s and "://" not in s)


@pytest.mark.parametrize("span", file_spans())
def test_every_file_named_exists(span: str) -> None:
    """A path is relative to the repository; a bare name or a glob may stand anywhere in it."""
    pattern = span.rstrip("/") + ("/*" if span.endswith("/") else "")
    found = [f for f in repository_files()
             if re.fullmatch(re.escape(pattern).replace(r"\*", "[^/]*") + ("(/.*)?" if "/" in span else ""), f)
             or ("/" not in span and f.rsplit("/", 1)[-1] == span)]
    assert found, f"docs/deploy.md names {span}, which is not in the repository"


def test_commands_name_real_targets_and_services() -> None:
    text = doc_text()
    targets = set(re.findall(r"^([a-z][\w-]*):", (bicep.ROOT / "Makefile").read_text(), re.MULTILINE))
    for target in re.findall(r"`make ([\w-]+)`", text):
        assert target in targets, f"make {target}"
    services = set(yaml.safe_load((bicep.ROOT / "azure.yaml").read_text())["services"])
    for service in re.findall(r"azd deploy ([a-z][\w-]*)", text):
        assert service in services, f"azd deploy {service}"
    assert re.findall(r"azd deploy ([a-z][\w-]*)", text), "the scan found no azd deploy commands"
