import pytest

from shared.data.manifest import BatchKind, Manifest, ManifestFile
from shared.errors import InvalidValue
from shared.workspace.base import DatasetMode


def test_round_trip():
    m = Manifest(kind=BatchKind.TRAIN, mode=DatasetMode.PARTIAL, batch="b1",
                 files=(ManifestFile("a.csv", 3, "md5=="), ManifestFile("b.csv")), created="2026-01-01T00:00:00Z")
    assert Manifest.parse(m.to_json()) == m


def test_files_are_optional_and_mode_defaults_to_full():
    m = Manifest.parse(b'{"kind": "inference"}')
    assert m.files is None and m.mode == DatasetMode.FULL and m.kind == BatchKind.INFERENCE


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("not json", "not valid JSON"),
        ("[]", "expected a JSON object"),
        ('{"kind": "weekly"}', "field 'kind' is 'weekly'; allowed: train, inference"),
        ('{"kind": "train", "mode": "append"}', "field 'mode'"),
        ('{"kind": "train", "files": {}}', "field 'files' must be a list"),
        ('{"kind": "train", "files": [{"size": 1}]}', "files[0]"),
        ('{"kind": "train", "files": [{"name": "a", "size": -1}]}', "'size' must be a non-negative integer"),
    ],
)
def test_bad_manifest_names_the_field(raw, message):
    with pytest.raises(InvalidValue) as e:
        Manifest.parse(raw, source="landing/train/b1/_manifest.json")
    assert message in str(e.value) and "landing/train/b1/_manifest.json" in str(e.value)
