"""What a workspace contract backend is (tests/unit/workspace_contract/conftest.py lists them).

Kept here, not in that conftest, so tests/integration/test_workspace_contract_local_services.py
can build one for the local backend's real services.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

from shared.workspace.base import Run, RunStatus, ServiceConfig, ServiceKind, Workspace


@dataclass
class ContractBackend:
    workspace: Workspace
    add_run: Callable[[Run], None]  # make ``run`` exist as if a pipeline had been submitted
    set_run_status: Callable[[str, RunStatus], None]  # the run moved on (running, completed, failed)
    default_pipelines: tuple[str, ...] = ()  # names submit publishes on first use
    service_config: ServiceConfig | None = None  # None: services are contract-tested in services_elsewhere
    services_elsewhere: str = ""
    other_service_kind: ServiceKind | None = None

    @classmethod
    def of(cls, given: object) -> ContractBackend:
        """``given`` (a ContractBackend, a namespace or a mapping of its fields) as a ContractBackend."""
        if isinstance(given, cls):
            return given
        fields = given if isinstance(given, dict) else vars(given)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(fields) - known)
        if unknown:
            raise TypeError(f"a contract backend has no field(s) {unknown}; known: {sorted(known)}")
        return cls(**fields)
