"""The media host's final image, reasoned from media_host/Dockerfile and .dockerignore (no Docker
engine): the files it holds, its base, user, command, port, environment, labels, venv and HEALTHCHECK
(also run for real against a local server), the pip installs per EMBEDDED_MODELS, and broken copies of
the Dockerfile being caught.
"""

from __future__ import annotations

import http.server
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.support.media_image import (
    DOCKERFILE,
    EMBEDDED_ARG,
    EMBEDDED_REQUIREMENTS,
    MEDIA_REQUIREMENTS,
    Build,
    audit,
    broken,
    check_base,
    check_command,
    check_healthcheck,
    check_image,
    check_labels,
    check_pip,
    check_port_and_env,
    check_user,
    check_venv,
    healthcheck_command,
    image_files,
    image_sources,
    installed_requirement_files,
    load_build,
)

FUNCTIONS_ONLY = ("callbacks", "orchestrations", "function_app", "local_stack", "tests", "bench")


@pytest.fixture(scope="module")
def build() -> Build:
    return load_build()


# --- the real image -----------------------------------------------------------------------------------


def test_image_holds_the_media_host_agents_and_switchboard_only(build: Build) -> None:
    assert check_image(build) == []
    files = image_files(build)
    sources = set(files.values())
    assert {"media_host/__main__.py", "switchboard/settings.py", "media_host/static/index.html"} <= sources
    assert {f for f in image_sources() if f.startswith("agents/definitions/")} <= sources  # YAML, Jinja, tools
    assert not [f for f in sources if f.split("/")[0] in FUNCTIONS_ONLY or f.endswith(("Dockerfile", ".pyc"))]


# The checks the real files pass one by one; each id is the name the check's test had on its own.
SINGLE_CHECKS = [
    pytest.param(check_base, id="image_uses_one_slim_python_base_matching_the_project"),
    pytest.param(check_user, id="final_stage_runs_as_a_non_root_user"),
    pytest.param(check_command, id="final_stage_starts_python_m_media_host_and_stops_on_sigterm"),
    pytest.param(check_port_and_env, id="port_bind_and_environment_match_the_settings"),
    pytest.param(check_labels, id="labels_carry_title_source_and_project_license"),
    pytest.param(check_venv, id="venv_is_built_in_the_builder_and_used_from_the_same_path"),
    pytest.param(check_healthcheck, id="healthcheck_is_declared_with_python_against_health"),
]


@pytest.mark.parametrize("check", SINGLE_CHECKS)
def test_the_real_dockerfile_passes(build: Build, check: Callable[[Build], list[str]]) -> None:
    assert check(build) == []


def test_pip_installs_media_requirements_and_embedded_ones_only_when_asked(build: Build) -> None:
    assert check_pip(build) == []
    assert installed_requirement_files(build, {}) == [MEDIA_REQUIREMENTS]  # the default is the small image
    assert installed_requirement_files(build, {EMBEDDED_ARG: "false"}) == [MEDIA_REQUIREMENTS]
    assert sorted(installed_requirement_files(build, {EMBEDDED_ARG: "true"})) == [EMBEDDED_REQUIREMENTS,
                                                                                 MEDIA_REQUIREMENTS]


# --- the HEALTHCHECK, run -----------------------------------------------------------------------------


@contextmanager
def health_server(status: int) -> Iterator[int]:
    class Health(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(status if self.path == "/health" else 404)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Health)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    try:
        yield server.server_port
    finally:
        server.shutdown()
        server.server_close()


def run_healthcheck(build: Build, port: int) -> int:
    """Run the HEALTHCHECK command as Docker would (a shell for the shell form), with the image's
    `python` being the dev venv's and MEDIA_HOST_PORT set as at run time."""
    command = healthcheck_command(build.final)
    assert command is not None
    argv = ["/bin/sh", "-c", command] if isinstance(command, str) else command
    env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "MEDIA_HOST_PORT": str(port)}
    return subprocess.run(argv, env=env, capture_output=True, timeout=20, check=False).returncode


def test_healthcheck_passes_on_200_and_fails_otherwise_on_the_runtime_port(build: Build) -> None:
    with health_server(200) as port:
        assert run_healthcheck(build, port) == 0
    with health_server(503) as port:
        assert run_healthcheck(build, port) == 1
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    assert run_healthcheck(build, closed) == 1


# --- deliberate breakages -----------------------------------------------------------------------------


# Each breakage of the real Dockerfile (a regular expression substitution) must produce the expected problem.
DOCKERFILE_BREAKAGES = [
    pytest.param(r"\nUSER 10001\n", "\n", "user: the final stage runs as root (no USER)", id="no-user"),
    pytest.param(r"\nUSER 10001\n", "\nUSER root\n", "user: the final stage runs as root (USER root)", id="root"),
    pytest.param(r"\nUSER 10001\n", "\nUSER 20002\n", "user: USER 20002 is not created", id="unknown-uid"),
    pytest.param(r'CMD \["python", "-m", "media_host"\]', "CMD python -m media_host", "cmd: want exec-form",
                 id="shell-form-cmd"),
    pytest.param(r"STOPSIGNAL SIGTERM", "STOPSIGNAL SIGKILL", "stopsignal: ", id="sigkill"),
    pytest.param(r"EXPOSE 8765", "EXPOSE 8080", "port: EXPOSE ['8080']", id="expose-8080"),
    pytest.param(r"MEDIA_HOST_PORT=8765", "MEDIA_HOST_PORT=9000", "MEDIA_HOST_PORT=9000 must", id="port-9000"),
    pytest.param(r"MEDIA_HOST_BIND=0\.0\.0\.0", "MEDIA_HOST_BIND=127.0.0.1", "env: want MEDIA_HOST_BIND=0.0.0.0",
                 id="bind-localhost"),
    pytest.param(r"LOG_FORMAT=json", "LOG_FORMAT=yaml", "env: the image's settings do not load: Invalid setting "
                 "LOG_FORMAT", id="bad-log-format"),
    pytest.param(r"\nHEALTHCHECK [^\n]*\\\n[^\n]*\n", "\n", "healthcheck: the final stage has no HEALTHCHECK",
                 id="no-healthcheck"),
    pytest.param(r"/health', timeout", "/ready', timeout", "healthcheck: does not ask", id="healthcheck-ready"),
    pytest.param(r"CMD python -c \"[^\n]*", "CMD curl -f http://127.0.0.1:8765/health",
                 "healthcheck: python:slim has neither curl", id="healthcheck-curl"),
    pytest.param(r"org\.opencontainers\.image\.licenses=\"MIT\"", 'org.opencontainers.image.licenses="GPL-3.0"',
                 "labels: licenses is not", id="wrong-license"),
    pytest.param(r"COPY --from=builder /opt/venv /opt/venv", "COPY --from=builder /opt/venv /venv",
                 "venv: the final stage must COPY", id="venv-moved"),
    pytest.param(r"FROM \$\{PYTHON_IMAGE\} AS runtime", "FROM python:3.12-slim-bookworm AS runtime",
                 "base: want a builder and a final stage on one base", id="two-bases"),
    pytest.param(r"ARG PYTHON_IMAGE=python:3\.11-slim-bookworm", "ARG PYTHON_IMAGE=python:3.11",
                 "base: python:3.11 is not a pinned", id="not-slim"),
    pytest.param(r"ARG EMBEDDED_MODELS=false", "ARG EMBEDDED_MODELS", "pip: ARG EMBEDDED_MODELS must default to false",
                 id="no-embedded-default"),
    pytest.param(r"ARG EMBEDDED_MODELS=false", "ARG EMBEDDED_MODELS=true",
                 "pip: ARG EMBEDDED_MODELS must default to false, got true", id="embedded-by-default"),
    pytest.param(r"RUN if \[[^\n]*(\n[^\n]*\\)*\n[^\n]*fi\n",
                 "RUN pip install --no-cache-dir -r requirements-media.txt -r requirements-embedded.txt\n",
                 "requirements-embedded.txt installed=True, want False", id="embedded-always"),
    pytest.param(r"(pip install --no-cache-dir -r requirements-media\.txt;)", r"\1 pip install -r requirements.txt;",
                 "requirements.txt is installed", id="functions-requirements"),
    pytest.param(r"COPY requirements-media\.txt requirements-embedded\.txt \./", "COPY requirements-media.txt ./",
                 "pip reads /build/requirements-embedded.txt, which no COPY", id="requirements-not-copied"),
    pytest.param(r"pip install --no-cache-dir -r requirements-media\.txt;", "pip install -r requirements-media.txt;",
                 "keeps pip's cache in the image", id="pip-cache"),
    pytest.param(r"COPY switchboard/ \./switchboard/\n", "", "image: /app/switchboard/settings.py is missing",
                 id="no-switchboard"),
    pytest.param(r"COPY switchboard/ \./switchboard/", "COPY switchboard/ ./lib/switchboard/",
                 "image: switchboard/settings.py is not at /app/switchboard/settings.py", id="switchboard-elsewhere"),
    pytest.param(r"COPY agents/ \./agents/", "COPY . ./",
                 "image: /app/requirements-media.txt (from requirements-media.txt) should not", id="copy-everything"),
]


def test_the_real_files_pass_every_check(build: Build) -> None:
    assert audit(build) == []


@pytest.mark.parametrize(("pattern", "replacement", "expected"), DOCKERFILE_BREAKAGES)
def test_a_broken_dockerfile_is_caught(pattern: str, replacement: str, expected: str) -> None:
    problems = audit(load_build(dockerfile=broken(DOCKERFILE.read_text(), pattern, replacement)))
    assert any(expected in problem for problem in problems), problems
