"""Host keys, like Azure's: a function key, the master key and the Event Grid extension's system key.

Generated once per ``MANYMODELS_HOME`` into ``devhost/keys.json`` (mode 0600) and reused by every
later host, so a script keeps working across restarts. Keys are compared in constant time and
never logged.
"""

from __future__ import annotations

import hmac
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

EVENTGRID_SYSTEM_KEY = "eventgrid_extension"


@dataclass(frozen=True, slots=True)
class HostKeys:
    function: str  # the "default" function key (host-level, valid for every function)
    master: str  # admin level
    eventgrid: str  # system key of the Event Grid webhook

    def __repr__(self) -> str:  # never print a key by accident
        return "HostKeys(function='***', master='***', eventgrid='***')"

    def allows(self, level: str, presented: str | None) -> bool:
        """Whether ``presented`` opens an HTTP function of auth level ``level``."""
        level = level.lower()
        if level == "anonymous":
            return True
        if not presented:
            return False
        accepted = [self.master] if level == "admin" else [self.function, self.master]
        return any(hmac.compare_digest(presented.encode(), k.encode()) for k in accepted)

    def allows_eventgrid(self, presented: str | None) -> bool:
        if not presented:
            return False
        return any(hmac.compare_digest(presented.encode(), k.encode()) for k in (self.eventgrid, self.master))

    def to_dict(self) -> dict:
        return {"functionKeys": {"default": self.function}, "masterKey": self.master,
                "systemKeys": {EVENTGRID_SYSTEM_KEY: self.eventgrid}}


def keys_file(home: Path) -> Path:
    return home / "devhost" / "keys.json"


def _new_key() -> str:
    return secrets.token_urlsafe(40)


def load_or_create(home: Path) -> HostKeys:
    path = keys_file(home)
    if path.exists():
        body = json.loads(path.read_text())
        return HostKeys(function=body["functionKeys"]["default"], master=body["masterKey"],
                        eventgrid=body["systemKeys"][EVENTGRID_SYSTEM_KEY])
    keys = HostKeys(function=_new_key(), master=_new_key(), eventgrid=_new_key())
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".keys-{secrets.token_hex(6)}.tmp")
    # created 0600 from the start: the key is never readable by others, not even briefly
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(keys.to_dict(), f)
    try:
        os.link(tmp, path)  # fails if another process created the keys first: theirs win
    except FileExistsError:
        return load_or_create(home)
    finally:
        tmp.unlink(missing_ok=True)
    return keys
