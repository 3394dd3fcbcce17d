"""The one way a series' id values become a model name (and so a folder name).

Stdlib only: the router imports it and must start without pandas.

A model name is also a directory name (``<output>/models/<name>/``, ``<models>/<name>/<version>/``)
and must pass Azure ML's rule, ``^[a-zA-Z0-9][a-zA-Z0-9\\-\\._]{0,254}$`` (``model_name_validation``
in ``azureml/_model_management/_util.py``, which ``Model.register`` calls; the local registry,
``shared/workspace/local/models.py``, checks the same). Retailer ids carry spaces, accents, ``&``,
``/``, ``+``; a name is therefore built in two ways:

- ``{model_type}_{id values sorted by id column name}`` when that already passes the rule, e.g.
  ``lr_dominicks_1000`` (unchanged from the first releases: registered models keep their names);
- otherwise a readable slug of the same text (accents dropped, other characters replaced by ``-``,
  cut to fit) plus ``_`` and 8 hex digits of the SHA-256 of the raw values, e.g. Brand ``minute maid``,
  Store ``1000`` -> ``lr_minute-maid_1000_<8 hex>``. The hash keeps two ids that slug the same apart (``A&W`` and
  ``A+W``).

The name depends only on the values' text: a request with the raw id values (numbers included:
``1000`` and ``"1000"`` are the same id) finds the model training registered.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Mapping
from typing import Any

MAX_LENGTH = 255
HASH_LENGTH = 8
# Azure ML's rule (see the module docstring); it also makes every name one plain path component.
_VALID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,254}")
_UNSAFE_RUN = re.compile(r"[^A-Za-z0-9._-]+")


class InvalidModelName(ValueError):
    """No model name can be made from these id values; the message says which value and why."""


def is_valid(name: object) -> bool:
    """Whether ``name`` is an allowed model name (Azure ML's rule; never ``.``/``..`` or a path)."""
    return isinstance(name, str) and _VALID.fullmatch(name) is not None


def check(name: object) -> str:
    """``name`` if it is allowed, else :class:`InvalidModelName` saying what is allowed."""
    if not is_valid(name):
        raise InvalidModelName(f"model name {name!r} is not allowed: expected 1-{MAX_LENGTH} letters, digits, '.', "
                               "'_' or '-', starting with a letter or digit")
    return name  # type: ignore[return-value]  # is_valid checked it is a str


def _text(column: str, value: Any) -> str:
    # The router names every record it routes: the common case (a non-blank str) stays cheap.
    if type(value) is str and value and not value[0].isspace() and not value[-1].isspace():
        return value
    if value is None or isinstance(value, Mapping | list | tuple | set):
        raise InvalidModelName(f"id {column}={value!r} is not allowed: expected a string or a number")
    text = str(value)
    if not text.strip():
        raise InvalidModelName(f"id {column}={value!r} is not allowed: an id value must not be empty")
    return text


def _slug(text: str) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return _UNSAFE_RUN.sub("-", ascii_text).strip("-")


def model_name(model_type: str, ids: Mapping[str, Any]) -> str:
    """The model name of the series with id values ``ids`` (``{column: value}``).

    Raises:
        InvalidModelName: no ids, an empty id value, or an empty model type.
    """
    if not ids:
        raise InvalidModelName("a series needs at least one id value to be named")
    kind = _text("model_type", model_type)
    values = [_text(str(c), ids[c]) for c in sorted(ids)]
    plain = f"{kind}_{'_'.join(values)}"
    if is_valid(plain):
        return plain
    digest = hashlib.sha256(json.dumps([kind, *values], ensure_ascii=False).encode("utf-8", "surrogatepass"))
    suffix = f"_{digest.hexdigest()[:HASH_LENGTH]}"
    slug = "_".join(_slug(part) for part in (kind, *values)).lstrip("._-")
    slug = slug[:MAX_LENGTH - len(suffix)].rstrip("._-") or "m"
    return check(f"{slug}{suffix}")
