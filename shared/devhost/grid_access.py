"""The local Event Grid of one MANYMODELS_HOME as the flows see it (``LocalEventGrid`` of
shared/flows/context.py): the topics the product publishes to and the delivery summary.

The flows never import this module; the local host hands it to them (shared/devhost/host.py) and
``manymodels status`` passes it to its context (shared/commands/status.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shared.devhost.eventgrid import summary
from shared.devhost.topics import ensure_topic
from shared.settings import Settings


@dataclass(frozen=True, slots=True)
class HomeEventGrid:
    home: Path

    @classmethod
    def of(cls, settings: Settings) -> HomeEventGrid:
        return cls(settings.home)

    def topic_access(self, topic: str) -> tuple[str, str]:
        """The topic's endpoint (on the running host's URL) and key; the topic is created on first use."""
        access = ensure_topic(self.home, topic)
        return access.endpoint, access.key

    def summary(self) -> dict[str, Any]:
        return summary(self.home)
