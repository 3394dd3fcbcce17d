"""The blob module and the Azurite process manager against a real Azurite."""

import base64
import hashlib

import pytest
from azure.core.exceptions import HttpResponseError

from shared.errors import InvalidValue, NotFound, PermissionDenied, Unavailable
from shared.storage import azurite
from shared.storage.account import DEV_KEY, StorageAccount
from shared.storage.blobs import BlobStore


@pytest.fixture
def store(storage_settings):
    s = BlobStore(StorageAccount(storage_settings.storage_connection), storage_settings.landing_container)
    s.ensure_container()
    s.ensure_container()  # idempotent
    return s


def test_parallel_upload_list_and_download(store, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    items = []
    for i in range(20):
        p = src / f"s{i}.csv"
        p.write_text(f"a,b\n{i},{i * 2}\n")
        items.append((f"train/b1/s{i}.csv", p))
    infos = store.upload_many(items, max_workers=4)
    assert [i.name for i in infos] == [n for n, _ in items]
    listed = {b.name: b for b in store.list("train/b1/")}
    assert set(listed) == {n for n, _ in items}
    expected_md5 = base64.b64encode(hashlib.md5((src / "s3.csv").read_bytes()).digest()).decode()
    assert listed["train/b1/s3.csv"].md5 == expected_md5
    assert listed["train/b1/s3.csv"].etag and listed["train/b1/s3.csv"].size == len("a,b\n3,6\n")
    out = store.download_many([n for n, _ in items], tmp_path / "out", strip_prefix="train/b1/")
    assert (tmp_path / "out" / "s7.csv").read_text() == "a,b\n7,14\n" and len(out) == 20


def test_overwrite_changes_etag(store):
    first = store.upload_bytes("x.txt", b"one")
    second = store.upload_bytes("x.txt", b"two")
    assert first.etag != second.etag and store.download_bytes("x.txt") == b"two"


def test_missing_blob_is_not_found(store):
    with pytest.raises(NotFound, match="does not exist"):
        store.download_bytes("nope.csv")
    store.delete("nope.csv")  # idempotent


def test_azurite_start_status_stop(tmp_path):
    home = tmp_path / "home"
    proc = azurite.start(home, ports=None, in_memory=True)
    try:
        assert azurite.status(home) == proc
        assert azurite.start(home) == proc  # already running: the same one
        BlobStore(StorageAccount(proc.connection_string), "ccc").ensure_container()
        with pytest.raises(InvalidValue, match="container 'c'"):
            BlobStore(StorageAccount(proc.connection_string), "c").ensure_container()
    finally:
        assert azurite.stop(home) is True
    assert azurite.status(home) is None
    assert azurite.stop(home) is False


def test_a_refused_signature_is_permission_denied_not_a_bad_container_name(azurite_proc_connection):
    """Azurite answers 403 to a request signed with another key, as Azure does without a data role."""
    wrong_key = base64.b64encode(b"not the account key" * 3).decode()
    account = StorageAccount(azurite_proc_connection.replace(DEV_KEY, wrong_key))
    with pytest.raises(PermissionDenied, match="403") as raised:
        BlobStore(account, "rolecheck").ensure_container()
    assert "container names" not in raised.value.message and not raised.value.retryable
    with pytest.raises(PermissionDenied):
        BlobStore(account, "rolecheck").upload_bytes("x.txt", b"x")


@pytest.mark.parametrize(("status", "error_code", "expected", "retryable"), [
    (503, "ServerBusy", Unavailable, True),
    (500, "InternalError", Unavailable, True),
    (403, "AuthorizationPermissionMismatch", PermissionDenied, False),
])
def test_container_creation_errors_keep_their_meaning(store, monkeypatch, status, error_code, expected, retryable):
    """azure-core's HttpResponseError, as the SDK raises it for a throttled or refused request."""
    error = HttpResponseError(message=f"{error_code} answered by the service")
    error.status_code, error.error_code = status, error_code

    def refuse(**kwargs):
        raise error

    monkeypatch.setattr(store._client, "create_container", refuse)
    with pytest.raises(expected, match=str(status)) as raised:
        store.ensure_container()
    assert raised.value.retryable is retryable and "container names" not in raised.value.message


@pytest.fixture
def azurite_proc_connection(storage_settings) -> str:
    return storage_settings.storage_connection
