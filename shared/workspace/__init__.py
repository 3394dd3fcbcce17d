"""The workspace port (base.py) and its adapters; :func:`open_workspace` picks one from settings."""

from __future__ import annotations

from shared.settings import Settings
from shared.workspace.base import Workspace


def open_workspace(settings: Settings) -> Workspace:
    """The backend named by ``MANYMODELS_BACKEND``: the local workspace or Azure ML (SDK v1 or v2)."""
    if settings.backend == "amlv2":
        from shared.workspace.amlv2.workspace import AmlV2Workspace

        return AmlV2Workspace.from_settings(settings)
    if settings.backend == "aml":
        from shared.workspace.aml.workspace import AmlWorkspace

        return AmlWorkspace.from_settings(settings)
    from shared.workspace.local.workspace import LocalWorkspace

    return LocalWorkspace(settings)
