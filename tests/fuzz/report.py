"""What the fuzz runner found: every input's outcome, counted per target, and the inputs that crashed.

An outcome is one of a few kinds: `accepted` (the protocol's answer came back: the input was taken),
`ended` (the call ended normally), `refused` (an HTTP error status with its reason), `closed` (a
WebSocket close code with its reason), `dropped` (the connection ended without an answer: what a
server does with bytes that are not HTTP), `left` (the fuzzer itself went away early). `crash` and
`hang` are findings: an internal error, an unexpected ERROR log line, or no answer at all.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.fuzz.logwatch import LogEvent

FINDINGS = frozenset({"crash", "hang"})
OUT_DIR = Path(__file__).resolve().parents[2] / "out" / "fuzz"


@dataclass(frozen=True)
class Outcome:
    kind: str
    detail: str = ""

    @property
    def label(self) -> str:
        return f"{self.kind} {self.detail}".strip()

    @property
    def finding(self) -> bool:
        return self.kind in FINDINGS


def reason_head(reason: str) -> str:
    """A close reason or error detail without its variable part, so outcomes group: `invalid message`."""
    head = reason.split(":", 1)[0].split(";", 1)[0].strip()
    return head[:48] or "(no reason)"


@dataclass
class Tried:
    index: int
    started: float
    ended: float
    outcome: Outcome


MEDIA_TARGETS = frozenset({"acs", "audiocodes", "browser", "media_http", "slowloris"})
FUNCTION_TARGETS = frozenset({"eventgrid", "callbacks", "call_apis"})


def related(target: str, logger: str) -> bool:
    """Could an input of `target` have made `logger` log? (Narrows the inputs a log line is pinned on.)"""
    if logger.startswith(("websockets", "media_host")):
        return target in MEDIA_TARGETS
    if logger.startswith(("callbacks", "local_stack", "aiohttp", "azure", "orchestrations")):
        return target in FUNCTION_TARGETS
    return True


@dataclass
class Finding:
    """One kind of failure: how often it happened and the inputs that may have caused it."""

    what: str
    count: int = 0
    traceback: str = ""  # of the first ERROR line, when the finding is one
    inputs: list[tuple[str, int]] = field(default_factory=list)  # (target, index): the first few
    reproducers: list[Path] = field(default_factory=list)


@dataclass
class Tally:
    """Outcomes per target, and the time window of every input (to pin log lines on inputs)."""

    seed: int | str
    tried: dict[str, list[Tried]] = field(default_factory=dict)
    findings: dict[str, Finding] = field(default_factory=dict)
    unattributed: list[LogEvent] = field(default_factory=list)
    started: float = field(default_factory=time.time)

    def add(self, target: str, index: int, started: float, outcome: Outcome) -> None:
        self.tried.setdefault(target, []).append(Tried(index, started, time.time(), outcome))
        if outcome.finding:
            self._found(f"{target}: {outcome.label}", [(target, index)])

    def _found(self, what: str, inputs: list[tuple[str, int]], traceback: str = "") -> None:
        finding = self.findings.setdefault(what, Finding(what, traceback=traceback))
        finding.count += 1
        finding.inputs += [i for i in inputs if i not in finding.inputs][: 5 - len(finding.inputs)]

    def inputs(self, target: str) -> int:
        return len(self.tried.get(target, []))

    def counts(self, target: str) -> Counter[str]:
        return Counter(t.outcome.label for t in self.tried.get(target, []))

    def _running(self, event: LogEvent, slack: float) -> list[tuple[str, int]]:
        hits: list[tuple[float, str, int]] = []
        for target, runs in self.tried.items():
            if related(target, event.logger):
                hits += [(abs(t.ended - event.at), target, t.index) for t in runs
                         if t.started - 0.05 <= event.at <= t.ended + slack]
        return [(target, index) for _, target, index in sorted(hits)]  # the input that ended nearest first

    def pin(self, events: list[LogEvent], slack: float = 0.5) -> None:
        """Each unexpected ERROR line is a finding, pinned on the inputs running when it was logged."""
        for event in events:
            hits = self._running(event, slack)
            if hits:
                self._found(f"ERROR log: {event.summary}", hits, event.traceback)
            else:
                self.unattributed.append(event)

    @property
    def failed(self) -> bool:
        return bool(self.findings or self.unattributed)


def save_reproducer(target: str, index: int, seed: int | str, what: str, item: dict[str, Any]) -> Path:
    """The input as JSON under out/fuzz/, for `python -m tests.fuzz --replay <file>`."""
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    path = OUT_DIR / f"{target}-{seed}-{index}.json"
    path.write_text(json.dumps({"target": target, "seed": seed, "index": index, "found": what, "input": item},
                               indent=1, ensure_ascii=True))
    return path


def render(tally: Tally, top: int = 8) -> str:
    """The figures: inputs and outcomes per target (the `top` most frequent), then the findings."""
    lines = [f"{'target':<12} {'inputs':>7}  outcomes (most frequent first)"]
    for target in tally.tried:
        counts = tally.counts(target)
        shown = ", ".join(f"{label} x{n}" for label, n in counts.most_common(top))
        more = len(counts) - top
        lines.append(f"{target:<12} {tally.inputs(target):>7}  {shown}{f', +{more} more kinds' if more > 0 else ''}")
    total = sum(tally.inputs(t) for t in tally.tried)
    lines.append(f"{'total':<12} {total:>7}  in {time.time() - tally.started:.1f} s")
    if tally.findings or tally.unattributed:
        outside = len(tally.unattributed)
        lines.append(f"FINDINGS: {len(tally.findings)} kinds (+{outside} ERROR lines outside any input)")
        for finding in list(tally.findings.values())[:30]:
            inputs = ", ".join(f"{t} #{i}" for t, i in finding.inputs)
            lines.append(f"  x{finding.count} {finding.what[:200]}  (inputs: {inputs})")
            lines += [f"      reproducer: {path}" for path in finding.reproducers]
            lines += [f"      | {line}" for line in finding.traceback.splitlines()[-6:]]
        for event in tally.unattributed[:10]:
            lines.append(f"  (no input) {event.summary}")
    else:
        lines.append("findings: none (no crash, no hang, no unexpected ERROR log line)")
    return "\n".join(lines)
