"""Comments point only at files in the repository: no design notes or issue numbers from elsewhere,
and every ``docs/architecture.md §N`` names a section that exists."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SOURCES = ("shared", "scoring", "pipelines", "benchmarks", "tests", "function_app.py", "infra")
ELSEWHERE = re.compile(r"DESIGN\.md|contracts §|\bissue \d")
SECTION = re.compile(r"docs/architecture\.md(?: section | §)(\d+(?:\.\d+)?)")


def _files() -> list[Path]:
    files = []
    for name in SOURCES:
        root = REPO / name
        files += [root] if root.is_file() else [*root.rglob("*.py"), *root.rglob("*.bicep")]
    return [f for f in files if f != Path(__file__).resolve()]


def test_no_comment_points_at_a_document_outside_the_repo() -> None:
    found = [f"{f.relative_to(REPO)}:{n}: {line.strip()}" for f in _files()
             for n, line in enumerate(f.read_text(errors="replace").splitlines(), 1) if ELSEWHERE.search(line)]
    assert not found, "point these at docs/architecture.md or another file in the repo:\n" + "\n".join(found)


def test_every_architecture_section_referenced_exists() -> None:
    headings = set(re.findall(r"^#{2,3} (\d+(?:\.\d+)?)\.? ", (REPO / "docs" / "architecture.md").read_text(), re.M))
    missing = sorted({f"{f.relative_to(REPO)}: §{m}" for f in _files()
                      for m in SECTION.findall(f.read_text(errors="replace")) if m not in headings})
    assert not missing, f"sections not in docs/architecture.md ({sorted(headings)}): {missing}"
