"""shared/paths.py: a path built from data never leaves its root."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.errors import InvalidValue
from shared.paths import path_inside


@pytest.mark.parametrize("name", ["../x", "a/../../x", "/etc/passwd", "a/../../../tmp/y", "nul\x00x", "link/x"])
def test_names_that_resolve_outside_the_root_are_refused(tmp_path: Path, name: str) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (root / "link").symlink_to(tmp_path)  # a symlink inside the root that points out of it
    with pytest.raises(InvalidValue, match="is not allowed"):
        path_inside(root, name, what="blob")


@pytest.mark.parametrize("name", ["x.csv", "train/batch/x.csv", "a/../x.csv", "lr_.._1000/model.json", "z" * 200])
def test_names_inside_the_root_are_joined(tmp_path: Path, name: str) -> None:
    assert path_inside(tmp_path, name) == tmp_path / name


@pytest.mark.parametrize("text", ["x/../../../tmp/y", "..", "a\\b", "nul\x00x", "z" * 300, "minute maid_1000"])
def test_file_stem_is_one_plain_file_name(tmp_path: Path, text: str) -> None:
    from shared.paths import file_stem

    stem = file_stem(text)
    assert stem and len(stem) <= 100 and Path(stem).name == stem and stem not in (".", "..") and "\x00" not in stem
    assert path_inside(tmp_path, f"forecast_{stem}.png").parent == tmp_path
