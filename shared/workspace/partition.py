"""How a run's input files are cut into mini-batches: one pure function used by every backend.

The local runner and the Azure ML adapter both call :func:`partition`, so the same dataset gives
the same mini-batches everywhere: sorted by file name (then full path, so equal names in different
folders still have a fixed order), then cut into chunks of ``mini_batch_size`` in that order.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable

from shared.errors import InvalidValue


def _name_key(item: str) -> tuple[str, str]:
    return posixpath.basename(item.replace("\\", "/")), item


def partition(items: Iterable[str], *, mini_batch_size: int) -> list[list[str]]:
    """Cut ``items`` (file paths or names) into mini-batches of at most ``mini_batch_size``.

    Deterministic: the order of ``items`` does not matter, duplicates are kept once.

    Raises:
        InvalidValue: ``mini_batch_size`` is not a whole number of at least 1.
    """
    if isinstance(mini_batch_size, bool) or not isinstance(mini_batch_size, int) or mini_batch_size < 1:
        raise InvalidValue(f"mini_batch_size={mini_batch_size!r} is not allowed: expected a whole number of files >= 1")
    ordered = sorted(set(items), key=_name_key)
    return [ordered[i:i + mini_batch_size] for i in range(0, len(ordered), mini_batch_size)]
