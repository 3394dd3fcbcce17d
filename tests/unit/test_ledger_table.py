"""The ledger's one error edge (shared/ledger/table.py) and its typed transitions, offline.

A real ``TableClient`` talks to a canned transport: the SDK itself turns the service's answers (a 503
``ServerBusy``, a 412 on an ETag condition...) into its exceptions, as it does against Azure."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
import requests
from azure.core.credentials import AzureNamedKeyCredential
from azure.core.pipeline.transport import HttpTransport, RequestsTransportResponse
from azure.data.tables import TableClient

from shared.errors import Conflict, PermissionDenied, Unavailable
from shared.ledger import BatchState, Ledger, PlanState, TaskState

Answer = tuple[int, dict[str, Any] | None, dict[str, str]]
ETAG = 'W/"datetime\'2026-12-03T10%3A00%3A00.0000000Z\'"'


class CannedTables(HttpTransport):
    """Answers each request with ``answer(method, url, body)``; remembers what was sent."""

    def __init__(self, answer: Callable[[str, str, dict[str, Any] | None], Answer]) -> None:
        self.answer = answer
        self.sent: list[tuple[str, str, dict[str, Any] | None]] = []

    def __enter__(self) -> CannedTables:
        return self

    def __exit__(self, *args: object) -> None:
        pass

    def open(self) -> None:
        pass

    def close(self) -> None:
        pass

    def send(self, request: Any, **kwargs: Any) -> RequestsTransportResponse:
        body = json.loads(request.body) if request.body else None
        self.sent.append((request.method, request.url, body))
        status, payload, headers = self.answer(request.method, request.url, body)
        response = requests.Response()
        response.status_code, response.url = status, request.url
        response._content = json.dumps(payload).encode() if payload is not None else b""
        response.headers["Content-Type"] = "application/json;odata=minimalmetadata"
        response.headers.update(headers)
        return RequestsTransportResponse(request, response)


def service_error(status: int, code: str, message: str) -> Answer:
    return status, {"odata.error": {"code": code, "message": {"lang": "en-US", "value": message}}}, \
        {"x-ms-error-code": code}


def table_exists(method: str, url: str) -> Answer | None:
    if method == "POST" and url.endswith("/Tables"):  # Ledger.ensure: create_table
        return service_error(409, "TableAlreadyExists", "The table specified already exists.")
    return None


def ledger_over(answer: Callable[[str, str, dict[str, Any] | None], Answer]) -> tuple[Ledger, CannedTables]:
    transport = CannedTables(lambda method, url, body: table_exists(method, url) or answer(method, url, body))
    client = TableClient("http://127.0.0.1:1/devstoreaccount1", "ledgertest", transport=transport, retry_total=0,
                         credential=AzureNamedKeyCredential("devstoreaccount1", "a2V5"))
    return Ledger(client), transport


def columns(body: dict[str, Any]) -> set[str]:
    """The properties of an entity the SDK sent (without its ``@odata.type`` annotations)."""
    return {k for k in body if "@" not in k}


def entity(row: dict[str, Any]) -> Answer:
    return 200, {"odata.etag": ETAG, **row}, {"ETag": ETAG}


def test_a_503_from_the_table_is_unavailable_and_retryable() -> None:
    ledger, _ = ledger_over(lambda method, url, body: service_error(503, "ServerBusy", "The server is busy."))
    with pytest.raises(Unavailable) as caught:
        ledger.runs.get("run-1")
    assert caught.value.retryable and "503" in caught.value.message and "ledgertest" in caught.value.message
    assert isinstance(caught.value.__cause__, Exception)  # the SDK's error stays as the cause


def test_throttling_on_a_query_and_on_a_write_is_unavailable() -> None:
    ledger, _ = ledger_over(lambda method, url, body: service_error(429, "TooManyRequests", "slow down"))
    with pytest.raises(Unavailable):
        ledger.batches.all(state=BatchState.OPEN)
    with pytest.raises(Unavailable):
        ledger.events.mark_processed("e-1", event_type="BlobCreated", outcome="ok")


def test_a_missing_role_is_permission_denied_not_retryable() -> None:
    ledger, _ = ledger_over(lambda method, url, body: service_error(403, "AuthorizationPermissionMismatch", "no"))
    with pytest.raises(PermissionDenied) as caught:
        ledger.outbox.get("e-1")
    assert not caught.value.retryable


def test_the_table_not_existing_yet_is_created_once() -> None:
    calls: list[str] = []

    def answer(method: str, url: str, body: dict[str, Any] | None) -> Answer:
        calls.append(method)
        return service_error(404, "ResourceNotFound", "The specified resource does not exist.")

    ledger, transport = ledger_over(answer)
    assert ledger.runs.get("a") is None and ledger.runs.get("b") is None  # a 404 on a read is "not there"
    assert [m for m, url, _ in transport.sent if url.endswith("/Tables")] == ["POST"]


def batch_row(**extra: Any) -> dict[str, Any]:
    return {"PartitionKey": "batch", "RowKey": "train%2Fb1", "kind": "train", "batch": "b1", "state": "closing",
            "created": "2026-12-03T10:00:00.000Z", "token": "mine", "closing_since": "2026-12-03T10:00:00.000Z",
            **extra}


def test_an_etag_condition_lost_is_a_reread_not_an_error() -> None:
    """412 on the conditional replace: someone else wrote first; the change is re-read and applied."""
    replaces: list[dict[str, Any]] = []

    def answer(method: str, url: str, body: dict[str, Any] | None) -> Answer:
        if method == "GET":
            return entity(batch_row())
        assert body is not None
        replaces.append(body)
        if len(replaces) == 1:
            return service_error(412, "UpdateConditionNotSatisfied", "The update condition specified was not met.")
        return 204, None, {"ETag": ETAG}

    ledger, _ = ledger_over(answer)
    ledger.batches.close("train", "b1", token="mine", run_id="run-9")
    assert len(replaces) == 2  # lost once, won the second time
    written = replaces[-1]
    assert written["state"] == "closed" and written["run_id"] == "run-9" and written["closed"]
    assert columns(written) - set(batch_row()) == {"run_id", "closed"}  # no stray column


def test_a_closer_that_was_taken_over_gets_conflict() -> None:
    ledger, transport = ledger_over(lambda method, url, body: entity(batch_row(token="someone-else")))
    with pytest.raises(Conflict, match="another instance"):
        ledger.batches.fail("train", "b1", token="mine", reason="bad data")
    assert all(method == "GET" for method, url, _ in transport.sent if "Tables" not in url)  # nothing written


def test_record_dataset_writes_the_dataset_and_the_capped_problems() -> None:
    replaces: list[dict[str, Any]] = []

    def answer(method: str, url: str, body: dict[str, Any] | None) -> Answer:
        if method == "GET":
            return entity(batch_row())
        assert body is not None
        replaces.append(body)
        return 204, None, {"ETag": ETAG}

    ledger, _ = ledger_over(answer)
    ledger.batches.record_dataset("train", "b1", token="mine", dataset_name="train", dataset_version=4,
                                  file_count=2, problems=[f"p{i}" for i in range(150)])
    [written] = replaces
    assert (written["dataset_name"], written["dataset_version"], written["file_count"]) == ("train", 4, 2)
    problems = json.loads(written["problems__0"])
    assert len(problems) == 101 and problems[-1] == "... and 50 more problems"
    assert written["state"] == "closing"  # recording the dataset is no state change


@pytest.mark.parametrize("call", [
    lambda ledger: ledger.batches.close("train", "b1", token="t", run="r"),
    lambda ledger: ledger.batches.record_dataset("train", "b1", token="t", dataset_name="d", dataset_version=1,
                                                 file_count=1, problem=[]),
    lambda ledger: ledger.plans.update("p1", expect=[PlanState.EXECUTING], sate=PlanState.DONE),
    lambda ledger: ledger.plans.update_task("p1", "g1", expect=[TaskState.PENDING], atempts=2),
    lambda ledger: ledger.runs.finish(None, state="completed", predicitons="x"),
], ids=["batch-close", "batch-dataset", "plan", "task", "run"])
def test_a_misspelt_field_is_a_type_error_before_any_write(call: Callable[[Ledger], Any]) -> None:
    ledger, transport = ledger_over(lambda method, url, body: pytest.fail(f"nothing may be sent: {method} {url}"))
    with pytest.raises(TypeError, match="unexpected keyword argument"):
        call(ledger)
    assert transport.sent == []


def test_a_state_that_does_not_exist_is_refused_before_any_write() -> None:
    ledger, transport = ledger_over(lambda method, url, body: pytest.fail(f"nothing may be sent: {method} {url}"))
    with pytest.raises(ValueError, match="'finished' is not a valid PlanState"):
        ledger.plans.update("p1", expect=[PlanState.EXECUTING], state="finished")  # type: ignore[arg-type]
    assert transport.sent == []


def test_a_plan_transition_writes_only_its_fields_when_the_state_is_expected() -> None:
    plan = {"PartitionKey": "plan", "RowKey": "p1", "plan_id": "p1", "target": "local", "state": "executing",
            "created": "2026-12-03T10:00:00.000Z", "reason": ""}
    replaces: list[dict[str, Any]] = []

    def answer(method: str, url: str, body: dict[str, Any] | None) -> Answer:
        if method == "GET":
            return entity({**plan, **(replaces[-1] if replaces else {})})
        assert body is not None
        replaces.append(body)
        return 204, None, {"ETag": ETAG}

    ledger, _ = ledger_over(answer)
    assert ledger.plans.update("p1", expect=[PlanState.FINISHING], state=PlanState.DONE)[1] is False
    assert replaces == []  # not in an expected state: nothing written
    updated, won = ledger.plans.update("p1", expect=[PlanState.EXECUTING], state=PlanState.FAILED, reason="r")
    assert won and updated is not None and updated.state == PlanState.FAILED and updated.reason == "r"
    assert columns(replaces[0]) - set(plan) == {"updated"}
