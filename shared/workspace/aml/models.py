"""The Azure ML model registry: ``Model.register`` / ``Model.list`` / ``Model`` / ``download``."""

from __future__ import annotations

import builtins  # builtins.list: in a class body after `def list`, a bare `list[...]` names the method
import logging
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

from azureml.core import Model
from azureml.core import Workspace as SdkWorkspace

from shared.errors import InvalidValue, ManyModelsError, NotFound
from shared.workspace.aml.sdk_errors import sdk_call, translate
from shared.workspace.base import ModelRecord, ModelRegistry, NewModel, parse_version
from shared.workspace.remote_calls import remove_each

log = logging.getLogger(__name__)

REGISTER_WORKERS = 16  # SDK v1 has no bulk registration: one call per model, in parallel


def to_record(model: Model) -> ModelRecord:
    created = getattr(model, "created_time", None)
    return ModelRecord(
        name=model.name,
        version=int(model.version),
        tags={str(k): str(v) for k, v in (model.tags or {}).items()},
        path=getattr(model, "url", None) or f"azureml://models/{model.name}/versions/{model.version}",
        properties={str(k): str(v) for k, v in (model.properties or {}).items()},
        created=created.astimezone(UTC).isoformat() if isinstance(created, datetime) else str(created or ""),
    )


def _check_artifacts(models: list[NewModel]) -> None:
    missing = [m for m in models if not Path(m.path).is_dir() or not any(Path(m.path).iterdir())]
    if missing:
        first = missing[0]
        raise InvalidValue(f"{len(missing)} model(s) have no artifact directory to register, e.g. {first.name!r}: "
                           f"{first.path} does not exist or is empty (train.py writes <output>/models/<name>/)")


class AmlModelRegistry(ModelRegistry):
    def __init__(self, ws: SdkWorkspace) -> None:
        self._ws = ws

    def register_many(self, models: Iterable[NewModel]) -> list[ModelRecord]:
        ws = self._ws
        models = list(models)
        _check_artifacts(models)  # all or nothing: a bad manifest registers no model

        def one(model: NewModel) -> ModelRecord | ManyModelsError:
            try:
                return to_record(Model.register(workspace=ws, model_path=model.path, model_name=model.name,
                                                tags=dict(model.tags), properties=dict(model.properties)))
            except Exception as e:  # register every other model before reporting
                return translate(e, f"register model {model.name!r} from {model.path}")

        with ThreadPoolExecutor(max_workers=REGISTER_WORKERS) as pool:
            results = list(pool.map(one, models))
        errors = [r for r in results if isinstance(r, ManyModelsError)]
        records = [r for r in results if isinstance(r, ModelRecord)]
        if errors:
            registered = len(results) - len(errors)
            first = errors[0]
            raise type(first)(f"{len(errors)} of {len(results)} models were not registered "
                              f"({registered} were); first error: {first.message}") from first
        return sorted(records, key=lambda r: (r.name, r.version))

    def list(
        self,
        *,
        latest: bool = True,
        tags: Mapping[str, str] | None = None,
        name: str | None = None,
    ) -> list[ModelRecord]:
        sdk_tags = [[k, v] for k, v in (tags or {}).items()] or None
        with sdk_call("list models"):
            models = Model.list(self._ws, name=name, tags=sdk_tags, latest=latest)
        records = [to_record(m) for m in models]
        # the service filters tags already; check again so a partial match never slips through
        wanted = dict(tags or {})
        records = [r for r in records if all(r.tags.get(k) == v for k, v in wanted.items())]
        return sorted(records, key=lambda r: (r.name, r.version))

    def get(self, name: str, version: int | str = "latest") -> ModelRecord:
        return to_record(self._sdk_model(name, version))

    def download(self, record: ModelRecord, target_dir: str) -> str:
        model = self._sdk_model(record.name, record.version)
        with sdk_call(f"download model {record.name}:{record.version} to {target_dir}"):
            return str(model.download(target_dir=target_dir, exist_ok=True))

    def _sdk_model(self, name: str, version: int | str) -> Model:
        number = parse_version(f"model {name!r}", version)
        with sdk_call(f"get model {name}:{version}"):
            return Model(self._ws, name=name, version=number)

    # Retention (shared/flows/retention.py): SDK v1 ``Model.delete``.
    supports_delete = True

    def delete_versions(self, versions: Iterable[tuple[str, int]]) -> builtins.list[tuple[str, int]]:
        """``Model(ws, name, version).delete()`` for each; a version already gone is skipped. One that
        Azure ML refuses (e.g. still used by a service) is logged and kept; only when every one is
        refused is the first refusal raised."""
        def delete(name: str, version: int) -> bool:
            try:
                model = self._sdk_model(name, version)
                with sdk_call(f"delete model {name}:{version}"):
                    model.delete()
            except NotFound:
                return False
            return True

        return remove_each(versions, delete, verb="deleted")
