"""A static model of `docker build` for tests: `.dockerignore` matching, Dockerfile parsing, and which
context files each stage's COPY instructions put where. No Docker engine is involved.

The `.dockerignore` semantics follow moby/patternmatcher (what both the classic builder and BuildKit
use): patterns are cleaned like Go's filepath.Clean with a leading `/` dropped; `*` and `?` never cross
`/`; `**` matches any number of directories (zero included); `!` re-includes; a pattern that matches a
parent directory matches everything under it; the last matching pattern wins.
"""

from __future__ import annotations

import json
import posixpath
import re
import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

# --- .dockerignore ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class IgnorePattern:
    text: str
    exclusion: bool  # a `!pattern`: matching paths are put back in the context
    regex: re.Pattern[str]


def clean(path: str) -> str:
    """Go's filepath.Clean for slash paths."""
    if not path:
        return "."
    cleaned = posixpath.normpath(path)
    return "/" + cleaned.lstrip("/") if cleaned.startswith("//") else cleaned


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    out, i = ["^"], 0
    while i < len(pattern):
        ch = pattern[i]
        if pattern.startswith("**", i):
            i += 2
            if pattern.startswith("/", i):  # `**/` is `**`
                i += 1
            out.append(".*" if i == len(pattern) else "(.*/)?")
            continue
        if ch == "*":
            out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "\\" and i + 1 < len(pattern):
            i += 1
            out.append(re.escape(pattern[i]))
        elif ch in ".+()|{}$\\":
            out.append("\\" + ch)
        else:  # character classes ([a-z]) pass through to the regular expression, as in Go
            out.append(ch)
        i += 1
    return re.compile("".join(out) + "$")


def parse_dockerignore(text: str) -> list[IgnorePattern]:
    patterns: list[IgnorePattern] = []
    for raw in text.removeprefix("\ufeff").splitlines():
        if raw.startswith("#"):
            continue
        line = raw.strip()
        if not line:
            continue
        exclusion = line.startswith("!")
        line = line[1:].strip() if exclusion else line
        line = clean(line)
        if len(line) > 1 and line.startswith("/"):
            line = line[1:]
        patterns.append(IgnorePattern(("!" if exclusion else "") + line, exclusion, _pattern_regex(line)))
    return patterns


def is_ignored(path: str, patterns: Sequence[IgnorePattern]) -> bool:
    """True when `path` (relative to the context root) is left out of the build context."""
    path = clean(path)
    parts = path.split("/")
    parents = ["/".join(parts[:n]) for n in range(1, len(parts))]
    ignored = False
    for pattern in patterns:
        if pattern.exclusion != ignored:  # this pattern cannot change the outcome
            continue
        if pattern.regex.match(path) or any(pattern.regex.match(parent) for parent in parents):
            ignored = not pattern.exclusion
    return ignored


def build_context(paths: Iterable[str], dockerignore: str) -> frozenset[str]:
    patterns = parse_dockerignore(dockerignore)
    return frozenset(p for p in paths if not is_ignored(p, patterns))


# --- Dockerfile ---------------------------------------------------------------------------------------

_FLAG = re.compile(r"--([a-z][a-z-]*)(?:=(\S*))?\s+")
_VARIABLE = re.compile(r"\\\$|\$\{(\w+)(?::([-+])([^}]*))?\}|\$(\w+)")


@dataclass(frozen=True)
class Instruction:
    keyword: str  # upper case
    flags: tuple[tuple[str, str], ...]  # leading --name=value options, in order
    value: str  # the rest, as written (after line continuations are joined)
    line: int

    def flag(self, name: str) -> str | None:
        found = [value for key, value in self.flags if key == name]
        return found[-1] if found else None

    def exec_form(self) -> list[str] | None:
        """The JSON (exec) form's arguments, or None for the shell form."""
        try:
            parsed = json.loads(self.value)
        except ValueError:
            return None
        ok = isinstance(parsed, list) and all(isinstance(item, str) for item in parsed)
        return [str(item) for item in parsed] if ok else None


@dataclass
class Stage:
    index: int
    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def last(self, keyword: str) -> Instruction | None:
        found = self.all(keyword)
        return found[-1] if found else None


@dataclass
class Dockerfile:
    global_args: dict[str, str | None]
    stages: list[Stage]

    def stage(self, ref: str) -> Stage:
        for stage in self.stages:
            if stage.name == ref or str(stage.index) == ref:
                return stage
        raise KeyError(f"no stage {ref!r}")

    @property
    def final(self) -> Stage:
        return self.stages[-1]


def substitute(text: str, variables: Mapping[str, str | None]) -> str:
    """Dockerfile variable substitution: $X, ${X}, ${X:-default}, ${X:+alternative}, \\$ for a dollar."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "\\$":
            return "$"
        value = variables.get(match.group(1) or match.group(4) or "")
        if match.group(2) == "-":
            return value if value else match.group(3)
        if match.group(2) == "+":
            return match.group(3) if value else ""
        return value or ""

    return _VARIABLE.sub(replace, text)


def _logical_lines(text: str) -> list[tuple[int, str]]:
    """Instructions with continuations joined; comment lines (also inside a continuation) dropped."""
    lines: list[tuple[int, str]] = []
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if stripped.startswith("#") or (pending and not stripped):
            continue
        if not pending:
            if not stripped:
                continue
            start = number
        body = raw.rstrip()
        if body.endswith("\\"):
            pending.append(body[:-1])
            continue
        pending.append(body)
        lines.append((start, "".join(pending).strip()))
        pending = []
    if pending:
        lines.append((start, "".join(pending).strip()))
    return lines


def parse_dockerfile(text: str) -> Dockerfile:
    global_args: dict[str, str | None] = {}
    stages: list[Stage] = []
    for number, line in _logical_lines(text):
        keyword, _, rest = line.partition(" ")
        keyword, rest = keyword.upper(), rest.strip() + " "
        if re.search(r"<<-?\s*['\"]?\w+", rest) and keyword in {"RUN", "COPY", "ADD"}:
            raise ValueError(f"line {number}: heredocs are not modelled")
        flags: list[tuple[str, str]] = []
        while match := _FLAG.match(rest):
            flags.append((match.group(1), match.group(2) or ""))
            rest = rest[match.end():]
        instruction = Instruction(keyword, tuple(flags), rest.strip(), number)
        if keyword == "FROM":
            words = instruction.value.split()
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            base = substitute(words[0], global_args)
            stages.append(Stage(len(stages), base, name))
        elif not stages:
            if keyword != "ARG":
                raise ValueError(f"line {number}: only ARG may come before the first FROM")
            global_args.update(parse_arg(instruction.value))
        else:
            stages[-1].instructions.append(instruction)
    return Dockerfile(global_args, stages)


def parse_arg(value: str) -> dict[str, str | None]:
    args: dict[str, str | None] = {}
    for word in shlex.split(value):
        name, sep, default = word.partition("=")
        args[name] = default if sep else None
    return args


def parse_pairs(value: str, variables: Mapping[str, str | None]) -> dict[str, str]:
    """ENV and LABEL: `k=v k2="v 2"` (or the legacy `ENV k v`), after variable substitution in order."""
    words = shlex.split(value)
    if words and "=" not in words[0]:
        return {words[0]: substitute(" ".join(words[1:]), variables)}
    pairs: dict[str, str] = {}
    for word in words:
        key, _, raw = word.partition("=")
        pairs[key] = substitute(raw, {**variables, **pairs})
    return pairs


@dataclass(frozen=True)
class StageState:
    """What a stage's instructions set, given build arguments."""

    args: dict[str, str | None]
    env: dict[str, str]
    labels: dict[str, str]
    workdir: str


def stage_state(dockerfile: Dockerfile, stage: Stage, build_args: Mapping[str, str] | None = None,
                *, until: Instruction | None = None) -> StageState:
    build_args = build_args or {}
    args: dict[str, str | None] = {}
    env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
    labels: dict[str, str] = {}
    workdir = "/"
    for instruction in stage.instructions:
        if instruction is until:
            break
        scope = {**args, **env}
        if instruction.keyword == "ARG":
            for name, default in parse_arg(instruction.value).items():
                inherited = dockerfile.global_args.get(name) if default is None else default
                args[name] = build_args.get(name, substitute(inherited, scope) if inherited is not None else None)
        elif instruction.keyword == "ENV":
            env.update(parse_pairs(instruction.value, scope))
        elif instruction.keyword == "LABEL":
            labels.update(parse_pairs(instruction.value, scope))
        elif instruction.keyword == "WORKDIR":
            workdir = posixpath.join(workdir, substitute(instruction.value, scope))
    return StageState(args, env, labels, clean(workdir))


class CopyError(Exception):
    """A COPY source is not in the build context: `docker build` would fail."""


def _sources(source: str, context: frozenset[str]) -> list[tuple[str, str]]:
    """(context file, its path relative to what COPY names) for one COPY source."""
    source = clean(source).lstrip("/") or "."
    if any(ch in source for ch in "*?["):
        pattern = _pattern_regex(source.replace("**", "*"))  # Go's filepath.Match: no `**`
        names = {"/".join(f.split("/")[:n]) for f in context for n in range(1, f.count("/") + 2)}
        matched = sorted(n for n in names if pattern.match(n))
        return [item for name in matched for item in _sources(name, context)]
    if source in context:
        return [(source, posixpath.basename(source))]
    prefix = "" if source == "." else source + "/"
    found = sorted((f, f[len(prefix):]) for f in context if f.startswith(prefix))
    if not found:
        raise CopyError(f"COPY source {source!r} is not in the build context")
    return [(f, "./" + rel) for f, rel in found]  # a directory's contents go inside the destination


def copied_files(dockerfile: Dockerfile, stage: Stage, context: frozenset[str],
                 build_args: Mapping[str, str] | None = None, *, until: Instruction | None = None) -> dict[str, str]:
    """Image path -> context path for every COPY/ADD from the build context in `stage` (before `until`)."""
    files: dict[str, str] = {}
    for instruction in stage.instructions:
        if instruction is until:
            break
        if instruction.keyword not in {"COPY", "ADD"} or instruction.flag("from") is not None:
            continue
        state = stage_state(dockerfile, stage, build_args, until=instruction)
        words = instruction.exec_form() or shlex.split(instruction.value)
        *sources, destination = (substitute(w, {**state.args, **state.env}) for w in words)
        into_directory = destination.endswith("/") or len(sources) > 1
        destination = posixpath.join(state.workdir, destination)
        for source in sources:
            for context_file, relative in _sources(source, context):
                directory_copy = relative.startswith("./")
                if directory_copy or into_directory:
                    target = posixpath.join(destination, relative.removeprefix("./"))
                else:
                    target = destination
                files[clean(target)] = context_file
    return files
