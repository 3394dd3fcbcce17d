"""The one check for a path built from data (a blob name, a manifest entry): it must stay inside its root.

A name like ``../../x``, ``/etc/x`` or ``a/../../x`` joined to a folder points outside it; so can a
symlink inside the folder. Model names never need it (scoring/model_names.py makes them one plain
folder name); everything else that joins outside text to a local folder goes through here.

``REPO_ROOT`` is the checkout itself, defined here once: the configuration files, the scoring
scripts and the local tools (Azurite, the Functions app) are found relative to it.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from shared.errors import InvalidValue

REPO_ROOT = Path(__file__).resolve().parents[1]


def file_stem(text: str, *, limit: int = 100) -> str:
    """``text`` as one readable file-name component: runs of anything but letters, digits, '.', '_'
    and '-' become '-' (so no '/', '..' or NUL), cut to ``limit``; 'x' when nothing is left."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip(".-")[:limit] or "x"


def path_inside(root: str | os.PathLike[str], relative: str | os.PathLike[str], *, what: str = "path") -> Path:
    """``root / relative``, or InvalidValue when it would resolve outside ``root`` (or holds a NUL)."""
    text = os.fspath(relative)
    if "\x00" in text:
        raise InvalidValue(f"{what} {text!r} is not allowed: it contains a NUL character")
    path = Path(root) / text
    base = os.path.realpath(root)
    if os.path.commonpath([base, os.path.realpath(path)]) != base:
        raise InvalidValue(f"{what} {text!r} is not allowed: it resolves outside {root}")
    return path
