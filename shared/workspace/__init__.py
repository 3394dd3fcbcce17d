"""The workspace port (base.py) and its adapters; :func:`open_workspace` picks one from settings."""

from __future__ import annotations

from shared.settings import Settings
from shared.workspace.base import Workspace


def open_workspace(settings: Settings) -> Workspace:
    """The backend named by ``MANYMODELS_BACKEND``: the local workspace or Azure ML."""
    if settings.backend == "aml":
        from shared.workspace.aml.workspace import AmlWorkspace

        return AmlWorkspace.from_settings(settings)
    from shared.workspace.local.workspace import LocalWorkspace

    return LocalWorkspace(settings)
