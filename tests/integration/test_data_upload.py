"""`manymodels data upload` against a real Azurite: blobs, manifest last, MD5s."""

import base64
import hashlib
import json
import re

import pytest

from shared.cli import main
from shared.data.manifest import MANIFEST_NAME, UPLOAD_MARKER, BatchKind, Manifest
from shared.data.simulate import write_simulated
from shared.data.upload import upload_batch
from shared.errors import BadData, InvalidValue, Unavailable
from shared.storage.account import StorageAccount
from shared.storage.blobs import BlobStore
from shared.workspace.base import DatasetMode

pytestmark = pytest.mark.integration


@pytest.fixture
def landing(storage_settings):
    return BlobStore(StorageAccount(storage_settings.storage_connection), storage_settings.landing_container)


@pytest.fixture
def sample(tmp_path):
    write_simulated(tmp_path / "sample", series=5, seed=4)
    return tmp_path / "sample"


def _md5(path):
    return base64.b64encode(hashlib.md5(path.read_bytes()).digest()).decode()


def test_upload_writes_every_file_then_the_manifest(storage_settings, landing, sample, monkeypatch):
    calls = []
    real_many, real_bytes = BlobStore.upload_many, BlobStore.upload_bytes

    def spy_many(self, items, **kwargs):
        calls.append(("files", [name for name, _ in items]))
        return real_many(self, items, **kwargs)

    def spy_bytes(self, name, data, **kwargs):
        calls.append(("bytes", name))
        return real_bytes(self, name, data, **kwargs)

    monkeypatch.setattr(BlobStore, "upload_many", spy_many)
    monkeypatch.setattr(BlobStore, "upload_bytes", spy_bytes)
    progress = []
    result = upload_batch(storage_settings, sample / "train", kind="train", batch="b1", progress=progress.append)

    prefix = "train/b1/"
    local = sorted((sample / "train").iterdir())
    assert result.prefix == prefix and result.batch == "b1" and len(result.files) == 5 == sum(progress)
    assert calls[-1] == ("bytes", prefix + MANIFEST_NAME)  # the manifest closes the batch: written last
    assert all(name != prefix + MANIFEST_NAME for kind, names in calls[:-1] if kind == "files" for name in names)

    blobs = {b.name: b for b in landing.list(prefix)}
    assert set(blobs) == {prefix + p.name for p in local} | {prefix + MANIFEST_NAME, prefix + UPLOAD_MARKER}
    for path in local:
        assert blobs[prefix + path.name].md5 == _md5(path)
        assert blobs[prefix + path.name].size == path.stat().st_size

    manifest = Manifest.parse(landing.download_bytes(prefix + MANIFEST_NAME))
    assert manifest.kind == BatchKind.TRAIN and manifest.mode == DatasetMode.FULL and manifest.batch == "b1"
    assert {(f.name, f.size, f.md5) for f in manifest.files} == {(p.name, p.stat().st_size, _md5(p)) for p in local}
    assert manifest.created.endswith("Z")


def test_nested_folders_keep_relative_paths_and_partial_mode(storage_settings, landing, sample):
    result = upload_batch(storage_settings, sample, kind=BatchKind.INFERENCE, mode="partial")
    assert re.fullmatch(r"\d{8}T\d{6}Z-[0-9a-f]{6}", result.batch)
    names = {b.name for b in landing.list(result.prefix)}
    assert f"inference/{result.batch}/inference/Store1000_dominicks.csv" in names
    assert f"inference/{result.batch}/train/Store1001_minute.maid.csv" in names
    manifest = Manifest.parse(landing.download_bytes(result.manifest))
    assert manifest.mode == DatasetMode.PARTIAL and len(manifest.files) == 10


def test_files_with_errors_are_not_uploaded_unless_asked(storage_settings, landing, sample, capsys):
    bad = sample / "train" / "Store1000_dominicks.csv"
    bad.write_text(bad.read_text().replace(",dominicks,", ",tropicana,", 1))  # two series in a one-series file
    with pytest.raises(BadData, match=r"1 file\(s\) in .* have errors: Store1000_dominicks.csv"):
        upload_batch(storage_settings, sample / "train", kind="train", batch="refused")
    assert landing.list("train/refused/") == []

    assert main(["data", "upload", str(sample / "train"), "--kind", "train", "--batch", "refused"]) == 1
    assert "--skip-validation" in capsys.readouterr().err
    assert main(["data", "upload", str(sample / "train"), "--kind", "train", "--batch", "forced",
                 "--skip-validation", "--json"]) == 0
    body = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert body["files"] == 5 and body["manifest"] == "train/forced/_manifest.json" and body["mode"] == "full"
    assert len(landing.list("train/forced/")) == 7  # 5 files, the upload marker, the manifest


@pytest.mark.parametrize(("kwargs", "message"), [({"kind": "weekly"}, "--kind 'weekly' is not allowed"),
                                                 ({"kind": "train", "batch": "a/b"}, "batch id 'a/b'"),
                                                 ({"kind": "train", "mode": "append"}, "--mode 'append'")])
def test_bad_arguments(storage_settings, sample, kwargs, message):
    with pytest.raises(InvalidValue, match=re.escape(message)):
        upload_batch(storage_settings, sample / "train", **kwargs)


def test_a_failed_upload_leaves_the_batch_open_and_says_how_to_finish_it(storage_settings, landing, sample):
    (sample / "train" / "Store9999_gone.csv").symlink_to(sample / "missing.csv")  # vanishes before upload
    with pytest.raises(Unavailable, match=r"run `manymodels data upload .* --kind train --batch half` again"):
        upload_batch(storage_settings, sample / "train", kind="train", batch="half", validate=False)
    assert not landing.exists("train/half/" + MANIFEST_NAME)


def test_empty_folder_is_refused(storage_settings, tmp_path):
    with pytest.raises(InvalidValue, match="holds no data files"):
        upload_batch(storage_settings, tmp_path, kind="train", validate=False)
