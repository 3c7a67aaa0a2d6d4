"""The media host's container image, modelled from media_host/Dockerfile and .dockerignore alone (no
Docker engine): the build context, the files each stage copies, how the final stage runs and the pip
installs per build argument.

Each check returns its problems, prefixed with the check's name, so the same checks run against the
real files (no problems) and against broken copies of them (the problem each breakage must produce).
"""

from __future__ import annotations

import functools
import itertools
import posixpath
import re
import shlex
import subprocess
import sys
import tomllib
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from switchboard.settings import PROJECT_ROOT, Settings, SettingsError, load_settings
from tests.support.docker_build import (
    CopyError,
    Dockerfile,
    Instruction,
    Stage,
    build_context,
    copied_files,
    parse_dockerfile,
    stage_state,
)

ROOT = PROJECT_ROOT
DOCKERFILE = ROOT / "media_host" / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
IMAGE_PACKAGES = ("media_host", "agents", "switchboard")
MEDIA_REQUIREMENTS = "requirements-media.txt"
EMBEDDED_REQUIREMENTS = "requirements-embedded.txt"
PIPER_REQUIREMENTS = "requirements-piper.txt"
EMBEDDED_ARG = "EMBEDDED_MODELS"
NEVER_INSTALLED = ("requirements.txt", "requirements-dev.txt", PIPER_REQUIREMENTS)
DEFAULT_PORT: int = Settings.model_fields["media_host_port"].default
# What a working tree holds besides git's files: none of it may reach the builder.
WORKING_TREE_EXTRAS = (
    ".git/config", ".venv/bin/python", "node_modules/mock/index.js", "out/report.json", ".data/records.sqlite3",
    "local.settings.json", ".env", "media_host/.env", "switchboard/local.settings.json", "agents/.env.production",
    "media_host/__pycache__/main.cpython-311.pyc", "agents/definitions/banking/__pycache__/tools.cpython-311.pyc",
    "switchboard/settings.pyc", ".mypy_cache/3.11/x.json", "tests/unit/__pycache__/x.pyc",
)


# --- the build ----------------------------------------------------------------------------------------


def _git_files(*options: str) -> list[str]:
    try:
        out = subprocess.run(["git", "ls-files", "-z", *options], cwd=ROOT, capture_output=True, check=True,
                             timeout=30).stdout.decode()
    except (OSError, subprocess.SubprocessError):
        pytest.skip("needs a git checkout to list the build context")
    return [name for name in out.split("\0") if name]


@functools.cache
def working_tree() -> frozenset[str]:
    """The files `docker build .` would walk: git's tracked and untracked files, each git-ignored
    directory (as one file inside it), and WORKING_TREE_EXTRAS."""
    listed = {f for f in _git_files("--cached", "--others", "--exclude-standard") if (ROOT / f).is_file()}
    ignored = {f + "some-file" if f.endswith("/") else f
               for f in _git_files("--others", "--ignored", "--exclude-standard", "--directory")}
    return frozenset(listed | ignored | set(WORKING_TREE_EXTRAS))


@functools.cache
def image_sources() -> frozenset[str]:
    """The media host's source files in git (tracked or not yet committed), which the image needs."""
    listed = _git_files("--cached", "--others", "--exclude-standard")
    return frozenset(f for f in listed if f.split("/")[0] in IMAGE_PACKAGES and (ROOT / f).is_file()
                     and f != "media_host/Dockerfile")


@dataclass(frozen=True)
class Build:
    dockerfile: Dockerfile
    context: frozenset[str]

    @property
    def builder(self) -> Stage:
        """The stage that builds the venv (else the first: the checks then say what is missing)."""
        return next((s for s in self.dockerfile.stages if venv_path(s)), self.dockerfile.stages[0])

    @property
    def final(self) -> Stage:
        return self.dockerfile.final


@functools.cache
def context_of(dockerignore: str) -> frozenset[str]:
    return build_context(working_tree(), dockerignore)


def load_build(dockerfile: str | None = None, dockerignore: str | None = None) -> Build:
    dockerfile = DOCKERFILE.read_text() if dockerfile is None else dockerfile
    dockerignore = DOCKERIGNORE.read_text() if dockerignore is None else dockerignore
    return Build(parse_dockerfile(dockerfile), context_of(dockerignore))


# --- the checks ---------------------------------------------------------------------------------------


def check_context(build: Build) -> list[str]:
    problems = [f"context: {f} would be sent to the builder" for f in sorted(build.context)
                if f.split("/")[0] not in IMAGE_PACKAGES and f not in (MEDIA_REQUIREMENTS, EMBEDDED_REQUIREMENTS)]
    for f in sorted(build.context):
        name = posixpath.basename(f)
        if name == ".env" or name.startswith((".env.", "local.settings.json")) or "__pycache__" in f.split("/"):
            problems.append(f"context: {f} (a secret or a cache) would be sent to the builder")
    needed = image_sources() | {MEDIA_REQUIREMENTS, EMBEDDED_REQUIREMENTS}
    problems += [f"context: {f} is needed but left out" for f in sorted(needed - build.context)]
    return problems


def check_base(build: Build) -> list[str]:
    problems: list[str] = []
    bases = {stage.base for stage in build.dockerfile.stages}
    if len(build.dockerfile.stages) < 2 or len(bases) != 1:
        problems.append(f"base: want a builder and a final stage on one base image (the venv links to its "
                        f"python), got {sorted(bases)}")
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    minimum = re.fullmatch(r">=\s*3\.(\d+)", requires)
    for base in sorted(bases):
        match = re.fullmatch(r"python:3\.(\d+)-slim(-[a-z]+)?", base)
        if match is None:
            problems.append(f"base: {base} is not a pinned python:3.X-slim image")
        elif (3, int(match.group(1))) != sys.version_info[:2] or not minimum or int(match.group(1)) < int(minimum[1]):
            problems.append(f"base: {base} is not a python of pyproject ({requires}) and of the dev venv "
                            f"(the import checks run in it)")
    return problems


def check_user(build: Build) -> list[str]:
    user = build.final.last("USER")
    if user is None:
        return ["user: the final stage runs as root (no USER)"]
    name = user.value.split(":")[0]
    if name in {"root", "0"}:
        return [f"user: the final stage runs as root (USER {user.value})"]
    for run in build.final.all("RUN"):
        for command in re.findall(r"\buseradd\b[^;&|]*", run.value):
            words = shlex.split(command)
            uids = [b for a, b in itertools.pairwise(words) if a in {"-u", "--uid"}]
            if name in (*uids, words[-1]):  # the login name is useradd's last word
                return []
    return [f"user: USER {name} is not created by a useradd in the final stage"]


def check_command(build: Build) -> list[str]:
    problems: list[str] = []
    cmd = build.final.last("CMD")
    if cmd is None or cmd.exec_form() != ["python", "-m", "media_host"]:
        problems.append("cmd: want exec-form CMD [\"python\", \"-m\", \"media_host\"] so SIGTERM reaches python")
    entrypoint = build.final.last("ENTRYPOINT")
    if entrypoint is not None:
        problems.append(f"cmd: ENTRYPOINT {entrypoint.value} wraps the command")
    stop = build.final.last("STOPSIGNAL")
    if stop is not None and stop.value not in {"SIGTERM", "TERM", "15"}:
        problems.append(f"stopsignal: the host drains calls on SIGTERM, not {stop.value}")
    return problems


def check_port_and_env(build: Build) -> list[str]:
    problems: list[str] = []
    state = stage_state(build.dockerfile, build.final)
    exposed = {port.split("/")[0] for i in build.final.all("EXPOSE") for port in i.value.split()}
    if exposed != {str(DEFAULT_PORT)} or state.env.get("MEDIA_HOST_PORT") != str(DEFAULT_PORT):
        problems.append(f"port: EXPOSE {sorted(exposed)} and MEDIA_HOST_PORT={state.env.get('MEDIA_HOST_PORT')} "
                        f"must both be the default media_host_port {DEFAULT_PORT}")
    wanted = {"MEDIA_HOST_BIND": "0.0.0.0", "PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1",
              "LOG_FORMAT": "json"}
    problems += [f"env: want {key}={value}, got {state.env.get(key)}" for key, value in wanted.items()
                 if state.env.get(key) != value]
    settings = {k.lower(): v for k, v in state.env.items() if k.lower() in Settings.model_fields}
    try:
        load_settings(**settings)
    except SettingsError as exc:
        problems.append(f"env: the image's settings do not load: {exc}")
    return problems


def healthcheck_command(stage: Stage) -> list[str] | str | None:
    """The HEALTHCHECK command: exec-form arguments, or a shell-form string; None when there is none."""
    check = stage.last("HEALTHCHECK")
    if check is None or check.value.upper() == "NONE":
        return None
    command = re.sub(r"^CMD\s+", "", check.value, flags=re.IGNORECASE)
    return Instruction("CMD", (), command, check.line).exec_form() or command


def check_healthcheck(build: Build) -> list[str]:
    check, command = build.final.last("HEALTHCHECK"), healthcheck_command(build.final)
    if check is None or command is None:
        return ["healthcheck: the final stage has no HEALTHCHECK"]
    text = command if isinstance(command, str) else " ".join(command)
    problems = [f"healthcheck: no --{option}" for option in ("interval", "timeout", "start-period", "retries")
                if check.flag(option) is None]
    if not re.search(rf"http://127\.0\.0\.1:(\$\{{?MEDIA_HOST_PORT\}}?|{DEFAULT_PORT})/health\b", text):
        problems.append(f"healthcheck: does not ask 127.0.0.1:MEDIA_HOST_PORT/health: {text}")
    if re.search(r"\b(curl|wget)\b", text):
        problems.append("healthcheck: python:slim has neither curl nor wget")
    if isinstance(command, list) and "$" in text:
        problems.append("healthcheck: exec form does not expand variables")
    return problems


def check_labels(build: Build) -> list[str]:
    labels = stage_state(build.dockerfile, build.final).labels
    license_text = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["license"]["text"]
    problems = [f"labels: no org.opencontainers.image.{key}" for key in ("title", "source", "licenses")
                if f"org.opencontainers.image.{key}" not in labels]
    if labels.get("org.opencontainers.image.licenses", license_text) != license_text:
        problems.append(f"labels: licenses is not the project's {license_text}")
    return problems


def venv_path(stage: Stage) -> str | None:
    for run in stage.all("RUN"):
        if match := re.search(r"\bpython3?\s+-m\s+venv\s+(\S+)", run.value):
            return match.group(1)
    return None


def check_venv(build: Build) -> list[str]:
    venv = venv_path(build.builder)
    copies = [shlex.split(i.value) for i in build.final.all("COPY")
              if i.flag("from") in {build.builder.name, str(build.builder.index)}]
    path = stage_state(build.dockerfile, build.final).env.get("PATH", "")
    if venv is None or [venv, venv] not in copies:
        return [f"venv: the final stage must COPY --from={build.builder.name} {venv} to the same path "
                f"(its scripts hold absolute paths), got {copies}"]
    if not path.startswith(f"{venv}/bin:"):
        return [f"venv: PATH does not start with {venv}/bin: {path}"]
    return []


# A shell `if [ "$X" = "v" ]; then A; else B; fi`: the only shell the builder's pip RUN may use.
_IF = re.compile(r'\bif\s+\[\s+"?\$\{?(\w+)\}?"?\s+(!?=)\s+"?([^"\s]*)"?\s+\];?\s*then\b(.*?)'
                 r"(?:\belse\b(.*?))?\bfi\b", re.DOTALL)
_PIP = re.compile(r"\b(?:pip3?|python3?\s+-m\s+pip)\s+install\b([^;&|]*)")


@dataclass(frozen=True)
class PipInstall:
    run: Instruction
    words: list[str]

    @property
    def requirement_files(self) -> list[str]:
        files = [b for a, b in itertools.pairwise(self.words) if a in {"-r", "--requirement"}]
        return files + [w.split("=", 1)[1] for w in self.words if w.startswith("--requirement=")]


def pip_installs(build: Build, build_args: dict[str, str]) -> list[PipInstall]:
    """The pip installs the builder runs with these build arguments (shell `if`s evaluated)."""
    installs: list[PipInstall] = []
    for run in build.builder.all("RUN"):
        state = stage_state(build.dockerfile, build.builder, build_args, until=run)
        variables = {**state.args, **state.env}

        def branch(match: re.Match[str], variables: dict[str, str | None] = variables) -> str:
            equal = (variables.get(match.group(1)) or "") == match.group(3)
            return match.group(4) if equal == (match.group(2) == "=") else (match.group(5) or "")

        commands = _IF.sub(branch, run.value)
        if re.search(r"\b(if|case|then)\b", commands):
            raise AssertionError(f"line {run.line}: shell beyond `if [ \"$X\" = v ]` is not modelled")
        installs += [PipInstall(run, shlex.split(m.group(1))) for m in _PIP.finditer(commands)]
    return installs


def installed_requirement_files(build: Build, build_args: dict[str, str]) -> list[str]:
    """The requirement files (context paths) pip installs; raises when one is not in the builder."""
    files: list[str] = []
    for install in pip_installs(build, build_args):
        copied = copied_files(build.dockerfile, build.builder, build.context, build_args, until=install.run)
        workdir = stage_state(build.dockerfile, build.builder, build_args, until=install.run).workdir
        for name in install.requirement_files:
            path = posixpath.normpath(posixpath.join(workdir, name))
            if path not in copied:
                raise LookupError(f"pip reads {path}, which no COPY before line {install.run.line} put there")
            files.append(copied[path])
    return files


def check_pip(build: Build) -> list[str]:
    problems: list[str] = []
    default = stage_state(build.dockerfile, build.builder).args.get(EMBEDDED_ARG)
    if default != "false":  # production uses Azure Speech: the embedded STT/TTS are opt-in
        problems.append(f"pip: ARG {EMBEDDED_ARG} must default to false, got {default}")
    for args in ({}, {EMBEDDED_ARG: "true"}, {EMBEDDED_ARG: "false"}):
        embedded = args.get(EMBEDDED_ARG, default) == "true"
        try:
            files = installed_requirement_files(build, args)
        except (LookupError, CopyError) as exc:
            problems.append(f"pip ({args}): {exc}")
            continue
        if MEDIA_REQUIREMENTS not in files:
            problems.append(f"pip ({args}): {MEDIA_REQUIREMENTS} is not installed")
        if (EMBEDDED_REQUIREMENTS in files) != embedded:
            problems.append(f"pip ({args}): {EMBEDDED_REQUIREMENTS} installed={not embedded}, want {embedded}")
    for install in pip_installs(build, {EMBEDDED_ARG: "true"}) + pip_installs(build, {EMBEDDED_ARG: "false"}):
        named = {posixpath.basename(f) for f in install.requirement_files}
        problems += [f"pip: line {install.run.line}: {name} is installed" for name in NEVER_INSTALLED if name in named]
        cached = "type=cache" in (install.run.flag("mount") or "")
        if "--no-cache-dir" not in install.words and not cached:
            problems.append(f"pip: line {install.run.line} keeps pip's cache in the image")
        if extra := [w for w in install.words if not w.startswith("-") and w not in install.requirement_files]:
            problems.append(f"pip: line {install.run.line} installs {extra} outside the requirement files")
    return problems


def image_files(build: Build) -> dict[str, str]:
    """Image path -> context path of everything the final stage copies from the context."""
    return copied_files(build.dockerfile, build.final, build.context)


def check_image(build: Build) -> list[str]:
    try:
        files = image_files(build)
    except CopyError as exc:
        return [f"image: {exc}"]
    workdir = stage_state(build.dockerfile, build.final).workdir
    expected = {posixpath.join(workdir, f) for f in image_sources()}
    problems = [f"image: {path} is missing" for path in sorted(expected - files.keys())][:20]
    problems += [f"image: {path} (from {source}) should not be in the image" for path, source in sorted(files.items())
                 if source.split("/")[0] not in IMAGE_PACKAGES]
    # settings.PROJECT_ROOT is the parent of switchboard/: agents_dir and imports resolve from WORKDIR.
    for needed in ("media_host/__main__.py", "switchboard/settings.py", "agents/definitions/banking/scenario.yaml",
                   "media_host/static/index.html"):
        if files.get(posixpath.join(workdir, needed)) != needed:
            problems.append(f"image: {needed} is not at {workdir}/{needed}")
    return problems


CHECKS: tuple[Callable[[Build], list[str]], ...] = (
    check_context, check_base, check_user, check_command, check_port_and_env, check_healthcheck, check_labels,
    check_venv, check_pip, check_image,
)


def audit(build: Build) -> list[str]:
    return [problem for check in CHECKS for problem in check(build)]


def broken(text: str, pattern: str, replacement: str) -> str:
    """`text` with the first match of `pattern` (a regular expression) replaced: a deliberate breakage."""
    result, count = re.subn(pattern, replacement, text, count=1)
    assert count == 1, f"the breakage {pattern!r} no longer applies to the file: update it"
    return result
