"""The model registry on Azure ML model assets (SDK v2): ``client.models``.

Each :class:`~shared.workspace.base.NewModel` becomes ``Model(type=custom_model, path=<artifact dir>)``
without a version, so the service numbers it (the SDK asks the model container for its next
version) and the SDK uploads the folder to the workspace's default datastore. SDK v2 has no bulk
registration: models are registered in parallel, one name's versions one after another (two
versions of one name at once would get the same number).

Listing: the v2 API lists the versions of one name, or the names (model containers); so
``list()`` reads the names, then each name's versions in parallel, and keeps the highest
version number of each name when ``latest`` (the number, not the text: "9" < "11").

Retention: SDK v2 cannot delete a model version, only archive it (``client.models.archive``).
``delete_versions`` archives: an archived version is no longer listed (lists show active assets)
and is never chosen to serve again; its artifacts stay in the workspace's storage.
"""

from __future__ import annotations

import builtins
import logging
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from azure.ai.ml.constants import AssetTypes
from azure.ai.ml.entities import Model
from azure.core.exceptions import AzureError

from shared.errors import InvalidValue, ManyModelsError, NotFound
from shared.settings import Settings
from shared.workspace.amlv2.sdk_errors import sdk_call, translate
from shared.workspace.base import ModelRecord, ModelRegistry, NewModel, parse_version
from shared.workspace.remote_calls import remove_each

if TYPE_CHECKING:
    from azure.ai.ml import MLClient

log = logging.getLogger(__name__)

REGISTER_WORKERS = 16  # parallel calls to Azure ML (registration, per-name listing, archiving)


def to_record(model: Model) -> ModelRecord:
    context = getattr(model, "creation_context", None)
    created = getattr(context, "created_at", None)
    return ModelRecord(
        name=str(model.name),
        version=int(str(model.version)),
        tags={str(k): str(v) for k, v in (model.tags or {}).items()},
        path=str(model.path or f"azureml:{model.name}:{model.version}"),
        properties={str(k): str(v) for k, v in (model.properties or {}).items()},
        created=created.astimezone(UTC).isoformat() if isinstance(created, datetime) else str(created or ""),
    )


def new_model_asset(model: NewModel) -> Model:
    """The SDK entity registering ``model`` (no version: the service gives the next one)."""
    return Model(name=model.name, path=model.path, type=AssetTypes.CUSTOM_MODEL, tags=dict(model.tags),
                 properties=dict(model.properties), description="manymodels model")


def _check_artifacts(models: Sequence[NewModel]) -> None:
    missing = [m for m in models if not Path(m.path).is_dir() or not any(Path(m.path).iterdir())]
    if missing:
        first = missing[0]
        raise InvalidValue(f"{len(missing)} model(s) have no artifact directory to register, e.g. {first.name!r}: "
                           f"{first.path} does not exist or is empty (train.py writes <output>/models/<name>/)")


def _numbered(models: Iterable[Model]) -> list[Model]:
    # only numbered versions are the product's (a version like "v1-manual" is someone else's)
    return sorted((m for m in models if str(m.version).isdigit()), key=lambda m: int(str(m.version)))


class AmlV2ModelRegistry(ModelRegistry):
    def __init__(self, client: MLClient, settings: Settings) -> None:
        self._client = client
        self._settings = settings

    def register_many(self, models: Iterable[NewModel]) -> list[ModelRecord]:
        models = list(models)
        _check_artifacts(models)  # all or nothing: a bad manifest registers no model
        by_name: dict[str, list[NewModel]] = defaultdict(list)
        for model in models:
            by_name[model.name].append(model)

        def one_name(group: list[NewModel]) -> list[ModelRecord | ManyModelsError]:
            results: list[ModelRecord | ManyModelsError] = []
            for model in group:
                try:  # register every other model before reporting
                    results.append(to_record(self._client.models.create_or_update(new_model_asset(model))))
                except (AzureError, TimeoutError, ConnectionError) as e:  # reported below, with the count
                    results.append(translate(e, f"register model {model.name!r} from {model.path}"))
            return results

        with ThreadPoolExecutor(max_workers=REGISTER_WORKERS) as pool:
            results = [r for group in pool.map(one_name, by_name.values()) for r in group]
        errors = [r for r in results if isinstance(r, ManyModelsError)]
        if errors:
            first = errors[0]
            raise type(first)(f"{len(errors)} of {len(results)} models were not registered "
                              f"({len(results) - len(errors)} were); first error: {first.message}") from first
        records = [r for r in results if isinstance(r, ModelRecord)]
        return sorted(records, key=lambda r: (r.name, r.version))

    def list(
        self,
        *,
        latest: bool = True,
        tags: Mapping[str, str] | None = None,
        name: str | None = None,
    ) -> builtins.list[ModelRecord]:
        if name is not None:
            names = [name]
        else:
            with sdk_call("list model names"):
                names = sorted({str(m.name) for m in self._client.models.list()})
        with ThreadPoolExecutor(max_workers=REGISTER_WORKERS) as pool:
            per_name = list(pool.map(self._versions, names))
        wanted = dict(tags or {})
        records: builtins.list[ModelRecord] = []
        for versions in per_name:
            chosen = versions[-1:] if latest else versions
            records.extend(r for r in map(to_record, chosen) if all(r.tags.get(k) == v for k, v in wanted.items()))
        return sorted(records, key=lambda r: (r.name, r.version))

    def get(self, name: str, version: int | str = "latest") -> ModelRecord:
        number = parse_version(f"model {name!r}", version)
        if number is None:
            versions = self._versions(name)
            if not versions:
                raise NotFound(f"model {name!r} is not registered in Azure ML")
            return to_record(versions[-1])
        with sdk_call(f"get model {name}:{number}"):
            return to_record(self._client.models.get(name=name, version=str(number)))

    def download(self, record: ModelRecord, target_dir: str) -> str:
        """``client.models.download`` writes ``<target_dir>/<name>/<artifact folder name>/...`` for a
        folder model; the artifact folder is returned."""
        with sdk_call(f"download model {record.name}:{record.version} to {target_dir}"):
            self._client.models.download(name=record.name, version=str(record.version), download_path=target_dir)
        root = Path(target_dir) / record.name
        folder = root / Path(record.path.rstrip("/")).name
        return str(folder if folder.is_dir() else root)

    supports_delete = True  # by archiving (module docstring)

    def delete_versions(self, versions: Sequence[tuple[str, int]]) -> builtins.list[tuple[str, int]]:
        """Archive each version; one already gone is skipped. One Azure ML refuses is logged and kept;
        only when every one is refused is the first refusal raised."""
        def archive(name: str, version: int) -> bool:
            try:
                with sdk_call(f"archive model {name}:{version}"):
                    self._client.models.archive(name=name, version=str(version))
            except NotFound:
                return False
            return True

        return remove_each(versions, archive, verb="archived")

    def _versions(self, name: str) -> builtins.list[Model]:
        """The active numbered versions of ``name``, lowest first ([] for an unknown name)."""
        try:
            with sdk_call(f"list the versions of model {name!r}"):
                return _numbered(self._client.models.list(name=name))
        except NotFound:
            return []
