"""The media host's build context: the `.dockerignore` matcher and the Dockerfile model of
tests/support/docker_build.py, then what the real .dockerignore sends to the builder (the media host's sources
and requirements; never a secret, a cache or the Functions code), and broken copies of it being caught.
"""

from __future__ import annotations

import pytest

from tests.support.docker_build import (
    CopyError,
    copied_files,
    is_ignored,
    parse_dockerfile,
    parse_dockerignore,
    stage_state,
)
from tests.support.media_image import (
    DOCKERIGNORE,
    MEDIA_REQUIREMENTS,
    WORKING_TREE_EXTRAS,
    Build,
    audit,
    broken,
    check_context,
    load_build,
)


@pytest.fixture(scope="module")
def build() -> Build:
    return load_build()


# --- .dockerignore matching ---------------------------------------------------------------------------


@pytest.mark.parametrize(("patterns", "path", "ignored"), [
    ("*", "README.md", True),
    ("*", "media_host/main.py", True),  # `*` matches the parent directory
    ("*\n!media_host/", "media_host/static/index.html", False),
    ("*\n!media_host/", "tests/unit/test_x.py", True),
    ("!media_host/\n*", "media_host/main.py", True),  # the last match wins
    ("**/__pycache__", "__pycache__/x.pyc", True),  # `**` matches no directory too
    ("**/__pycache__", "agents/definitions/__pycache__/x.pyc", True),
    ("**/__pycache__", "agents/__pycache__x/y.py", False),
    ("*.md", "docs/softphone.md", False),  # `*` never crosses a `/`
    ("**/*.md", "docs/softphone.md", True),
    ("docs\n!docs/keep.md", "docs/keep.md", False),
    ("docs\n!docs/keep.md", "docs/other.md", True),
    ("/out", "out/report.json", True),  # a leading slash is the context root
    ("out/", "out", True),  # a trailing slash is cleaned away
    ("a?c", "abc", True),
    ("a?c", "a/c", False),
    ("media_host/*.py", "media_host/main.py", True),
    ("media_host/*.py", "media_host/engines/base.py", False),
    ("foo/**", "foo/bar/baz", True),
    ("foo/**", "foo", False),
    ("**", "any/thing", True),
    ("**/*.py[cod]", "a/b.pyc", True),
    ("**/*.py[cod]", "a/b.py", False),
    ("  # not a comment: leading space\n", "# not a comment: leading space", True),
    ("# a comment\n\n   \n", "# a comment", False),
    ("  !  keep \n", "keep", False),
    (".git", ".git/config", True),
    (".git", "media_host/.git/config", False),
])
def test_dockerignore_matching_follows_docker(patterns: str, path: str, ignored: bool) -> None:
    assert is_ignored(path, parse_dockerignore(patterns)) is ignored


def test_dockerignore_patterns_are_cleaned_like_docker() -> None:
    parsed = parse_dockerignore("\ufeff./a/../b/\n!/c//d\n#x\n")
    assert [p.text for p in parsed] == ["b", "!c/d"]


# --- the Dockerfile model -----------------------------------------------------------------------------


def test_dockerfile_parser_joins_lines_and_resolves_stages_args_and_copies() -> None:
    text = "\n".join([
        "# syntax=docker/dockerfile:1",
        "ARG BASE=python:3.11-slim",
        "FROM ${BASE} AS build",
        "ARG FLAG=false",
        "RUN --mount=type=cache,target=/root/.cache/pip echo a \\",
        "    # a comment inside a continuation",
        "    && echo $FLAG",
        "FROM $BASE",
        "ENV A=1 B=\"two words\" C=${A}x",
        "WORKDIR /app",
        "WORKDIR sub",
        "COPY --from=build /x /x",
        "COPY media_host/ pkg/",
        "COPY requirements-media.txt a.txt ./reqs/",
        "CMD [\"python\", \"-m\", \"media_host\"]",
    ])
    parsed = parse_dockerfile(text)
    build_stage, final = parsed.stages
    assert (build_stage.name, build_stage.base, final.name, final.base) == ("build", "python:3.11-slim", None,
                                                                            "python:3.11-slim")
    run = build_stage.all("RUN")[0]
    assert run.flag("mount") == "type=cache,target=/root/.cache/pip"
    assert run.value == "echo a     && echo $FLAG"
    assert stage_state(parsed, build_stage, {"FLAG": "true"}).args == {"FLAG": "true"}
    state = stage_state(parsed, final)
    assert (state.env["B"], state.env["C"], state.workdir) == ("two words", "1x", "/app/sub")
    assert final.all("CMD")[0].exec_form() == ["python", "-m", "media_host"]
    context = frozenset({"media_host/main.py", "media_host/static/index.html", "requirements-media.txt", "a.txt"})
    assert copied_files(parsed, final, context) == {
        "/app/sub/pkg/main.py": "media_host/main.py",
        "/app/sub/pkg/static/index.html": "media_host/static/index.html",
        "/app/sub/reqs/requirements-media.txt": "requirements-media.txt",
        "/app/sub/reqs/a.txt": "a.txt",
    }
    with pytest.raises(CopyError, match="not in the build context"):
        copied_files(parsed, final, frozenset({"media_host/main.py"}))


# --- the real context ---------------------------------------------------------------------------------


def test_context_is_the_media_host_sources_and_its_requirements_only(build: Build) -> None:
    assert check_context(build) == []
    for left_out in ("tests/unit/test_settings.py", "local_stack/stack.py", "callbacks/incoming.py",
                     "orchestrations/call_session.py", "function_app.py", "infra/bicep/README.md",
                     *WORKING_TREE_EXTRAS):
        assert left_out not in build.context
    for sent in ("media_host/__main__.py", "media_host/static/softphone.js",
                 "agents/definitions/clinic/prompts/nurse.j2", "agents/definitions/banking/agents/auth.yaml",
                 "switchboard/settings.py", MEDIA_REQUIREMENTS):
        assert sent in build.context


# Each breakage of the real .dockerignore (a regular expression substitution) must produce the expected problem.
DOCKERIGNORE_BREAKAGES = [
    pytest.param(r"(?m)^\*\n", "", "context: function_app.py would be sent", id="no-deny-all"),
    pytest.param(r"\*\*/\.env\n", "", "context: media_host/.env (a secret or a cache)", id="env-file"),
    pytest.param(r"\*\*/local\.settings\.json\*\n", "", "context: switchboard/local.settings.json (a secret",
                 id="local-settings"),
    pytest.param(r"\*\*/__pycache__\n\*\*/\*\.py\[cod\]\n", "",
                 "context: media_host/__pycache__/main.cpython-311.pyc (a secret or a cache)", id="caches"),
    pytest.param(r"!switchboard/\n", "", "image: COPY source 'switchboard' is not in the build context",
                 id="no-switchboard"),
    pytest.param(r"!requirements-embedded\.txt\n", "",
                 "COPY source 'requirements-embedded.txt' is not in the build context", id="no-embedded-requirements"),
    pytest.param(r"!agents/\n", "!agents/\ntests\n!tests/\n", "context: tests/unit/test_settings.py would be sent",
                 id="tests-included"),
]


@pytest.mark.parametrize(("pattern", "replacement", "expected"), DOCKERIGNORE_BREAKAGES)
def test_a_broken_dockerignore_is_caught(pattern: str, replacement: str, expected: str) -> None:
    problems = audit(load_build(dockerignore=broken(DOCKERIGNORE.read_text(), pattern, replacement)))
    assert any(expected in problem for problem in problems), problems

