"""The Bicep lint of `make lint` (checkov in its own tool environment, Makefile): pinned, offline, part of
`make test`, and every check it skips is skipped in the template, on the resource, with a reason."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MAKEFILE = (REPO / "Makefile").read_text()
PINS = REPO / "pipelines" / "ci" / "checkov-requirements.txt"
SKIP = re.compile(r"^\s*//checkov:skip=(CKV2?_[A-Z]+_\d+)(.*)$")
BICEP = sorted((REPO / "infra").rglob("*.bicep"))


def make_variable(name: str) -> str:
    m = re.search(rf"^{name} := (.+)$", MAKEFILE, re.MULTILINE)
    assert m, f"Makefile defines no {name}"
    return m.group(1).strip()


def recipe(target: str) -> tuple[list[str], list[str]]:
    """(prerequisites, recipe lines) of a Makefile target."""
    m = re.search(rf"^{re.escape(target)}:([^\n]*)\n((?:\t[^\n]*\n)*)", MAKEFILE, re.MULTILINE)
    assert m, f"Makefile has no target {target}"
    return m.group(1).split(), [line.strip() for line in m.group(2).splitlines()]


def test_make_test_lints_the_bicep_with_the_pinned_checkov():
    assert "lint" in recipe("test")[0]
    prerequisites, lines = recipe("lint")
    assert "$(CHECKOV_ENV)/.installed" in prerequisites
    assert any(line.endswith("$(CHECKOV_ENV)/bin/checkov $(CHECKOV_ARGS)") for line in lines)
    args = make_variable("CHECKOV_ARGS").split()
    assert args[:4] == ["-d", "infra", "--framework", "bicep"]
    assert "--skip-download" in args  # offline: no call to the vendor's API
    assert "--soft-fail" not in args and not any(a.startswith("--skip-check") for a in args)  # every check counts


def test_the_tool_environment_is_its_own_venv_from_the_pins():
    assert make_variable("CHECKOV_ENV") == ".tools/checkov"
    assert make_variable("CHECKOV_PINS") == PINS.relative_to(REPO).as_posix()
    prerequisites, lines = recipe("$(CHECKOV_ENV)/.installed")
    assert "$(CHECKOV_PINS)" in prerequisites
    assert any("-m venv $(CHECKOV_ENV)" in line for line in lines)
    assert any("--python $(CHECKOV_ENV)/bin/python" in line and "-r $(CHECKOV_PINS)" in line for line in lines)
    assert ".tools/" in (REPO / ".gitignore").read_text().splitlines()


def test_every_requirement_is_pinned_and_checkov_is_3_3_30():
    pins = [line for line in PINS.read_text().splitlines() if line and not line.startswith("#")]
    assert "checkov==3.3.30" in pins
    loose = [line for line in pins if not re.fullmatch(r"[A-Za-z0-9_.\-]+==[\w.+\-]+", line)]
    assert not loose, f"{PINS.name}: not pinned with == {loose}"


def skips() -> list[tuple[Path, int, str, str]]:
    found = []
    for path in BICEP:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            m = SKIP.match(line)
            if m:
                found.append((path, number, m.group(1), m.group(2)))
    return found


@pytest.mark.parametrize(("path", "number", "check", "reason"), skips(),
                         ids=lambda v: v.name if isinstance(v, Path) else str(v))
def test_a_skipped_check_says_why_on_its_resource(path, number, check, reason):
    assert re.match(r":\s+\S", reason), f"{path.name}:{number}: {check} needs ': <reason>'"
    assert len(reason.split()) >= 8, f"{path.name}:{number}: {check}: say why the check does not apply"
    lines = path.read_text().splitlines()
    above = number - 2
    while SKIP.match(lines[above]):
        above -= 1
    assert lines[above].startswith("resource "), f"{path.name}:{number}: a skip belongs on its resource's first lines"


def test_each_check_is_skipped_at_most_once_per_resource():
    seen = set()
    for path, number, check, _ in skips():
        lines = path.read_text().splitlines()
        above = number - 2
        while SKIP.match(lines[above]):
            above -= 1
        key = (path, above, check)
        assert key not in seen, f"{path.name}:{number}: {check} skipped twice on one resource"
        seen.add(key)
