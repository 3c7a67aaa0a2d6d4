"""Every relative link in README.md and docs/*.md reaches a file, and every #anchor a heading there.

Anchors are GitHub's: the heading's text, lower-cased, without punctuation, spaces as hyphens, and
`-1`, `-2`... for repeats (github/cmark-gfm's anchor rule, as github.com renders README files).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from switchboard.settings import PROJECT_ROOT

PAGES = [PROJECT_ROOT / "README.md", *sorted((PROJECT_ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^(```|~~~).*?^\1", re.S | re.M)
CODE_SPAN = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"(?<!!)\[(?:[^\]\[]|\[[^\]]*\])*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.M)


def prose(text: str) -> str:
    """The text outside fenced code blocks."""
    return FENCE.sub("", text)


def anchors(page: Path) -> set[str]:
    seen: dict[str, int] = {}
    found = set()
    for heading in HEADING.findall(prose(page.read_text())):
        text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).replace("`", "")
        slug = re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        found.add(slug if count == 0 else f"{slug}-{count}")
    return found


def broken_links(page: Path) -> list[str]:
    """Each relative link of `page` whose file or anchor does not exist, as `target: why`."""
    broken = []
    for target in LINK.findall(CODE_SPAN.sub("", prose(page.read_text()))):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto: ...: not ours to check
            continue
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists():
            broken.append(f"{target}: no such file")
        elif anchor and file.suffix == ".md" and anchor not in anchors(file):
            broken.append(f"{target}: no heading with that anchor in {file.name}")
    return broken


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(PROJECT_ROOT).as_posix())
def test_every_relative_link_resolves(page: Path) -> None:
    assert broken_links(page) == []


def test_the_checker_finds_a_broken_file_and_anchor(tmp_path: Path) -> None:
    (tmp_path / "other.md").write_text("# Other page\n\n## The `call_session` orchestration\n\n## Cost: 1,000 calls\n")
    page = tmp_path / "page.md"
    page.write_text(
        "# Page\n\n## Page\n\n"
        "[ok](other.md) [ok](other.md#the-call_session-orchestration) [ok](other.md#cost-1000-calls)\n"
        "[ok](#page) [ok](#page-1) [ok](https://example.com/x.md#nope) `[code](missing.md)`\n"
        "[bad](missing.md) [bad](other.md#nope) [bad](#nope)\n"
        "```\n[fenced](missing.md)\n# Not a heading\n```\n[bad](#not-a-heading)\n"
    )
    assert broken_links(page) == [
        "missing.md: no such file",
        "other.md#nope: no heading with that anchor in other.md",
        "#nope: no heading with that anchor in page.md",
        "#not-a-heading: no heading with that anchor in page.md",
    ]


def test_the_manual_is_found() -> None:
    names = {page.name for page in PAGES}
    assert {"README.md", "security.md", "settings.md", "performance.md"} <= names
