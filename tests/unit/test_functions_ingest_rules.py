"""Which blobs belong to which batch, which are refused and why, and which files a closing batch
keeps (pure functions of shared.flows.ingest)."""

from __future__ import annotations

import pytest

from shared.data.manifest import BatchKind, Manifest, ManifestFile
from shared.errors import InvalidValue
from shared.flows.ingest import landing_path, select_files, unsafe_name
from shared.storage.blobs import BlobInfo
from shared.workspace.base import DatasetMode


def test_landing_layout() -> None:
    where = landing_path("landing", "train/2026-11-27/sub/Store1000_dominicks.csv", landing_container="landing")
    assert (where.kind, where.batch, where.name) == (BatchKind.TRAIN, "2026-11-27", "sub/Store1000_dominicks.csv")
    assert landing_path("landing", "inference/b/_manifest.json", landing_container="landing").is_manifest


@pytest.mark.parametrize(("container", "blob", "why"), [
    ("other", "train/b/a.csv", "not the landing container"),
    ("landing", "models/b/a.csv", "outside the landing layout"),
    ("landing", "train/a.csv", "outside the landing layout"),
    ("landing", "train/b/../../x.csv", "'..'"),
    ("landing", "/train/b/a.csv", "absolute"),
    ("landing", "train/b/a\x00.csv", "control characters"),
    ("landing", "train/b\\c/a.csv", "backslash"),
    ("landing", "train//a.csv", "empty"),
])
def test_refused_blobs_say_why(container: str, blob: str, why: str) -> None:
    with pytest.raises(InvalidValue, match=why):
        landing_path(container, blob, landing_container="landing")


def test_unsafe_name_accepts_ordinary_names() -> None:
    assert unsafe_name("Store1000_minute.maid.csv") == ""
    assert unsafe_name("part-00001.parquet") == ""


def blob(name: str, size: int = 10, md5: str | None = "bWQ1") -> BlobInfo:
    return BlobInfo("landing", f"train/b/{name}", f"0x{name}", size, md5, "")


def test_select_files_checks_the_manifest() -> None:
    blobs = {"a.csv": blob("a.csv"), "b.csv": blob("b.csv", size=11), "c.csv": blob("c.csv", md5="b3RoZXI="),
             "extra.csv": blob("extra.csv"), "_manifest.json": blob("_manifest.json")}
    manifest = Manifest(BatchKind.TRAIN, DatasetMode.FULL, "b", files=(
        ManifestFile("a.csv", 10, "bWQ1"), ManifestFile("b.csv", 10), ManifestFile("c.csv", None, "bWQ1"),
        ManifestFile("gone.csv")))
    files, problems = select_files(blobs, manifest, prefix="train/b/")
    assert [f.name for f in files] == ["a.csv"]
    assert files[0].path == "train/b/a.csv" and files[0].md5 == "bWQ1"
    text = " | ".join(problems)
    for expected in ("b.csv: size is 11", "c.csv: MD5", "gone.csv: listed", "extra.csv: not listed"):
        assert expected in text


def test_select_files_without_a_list_takes_every_blob_but_the_manifest() -> None:
    blobs = {"a.csv": blob("a.csv"), "_manifest.json": blob("_manifest.json")}
    files, problems = select_files(blobs, Manifest(BatchKind.TRAIN, DatasetMode.PARTIAL, "b"), prefix="train/b/")
    assert [f.name for f in files] == ["a.csv"] and problems == []
