"""HTTP functions called like the worker calls them: bad bodies answer 400 naming the field,
never a stack trace; health answers without storage; every setting is in the example file."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import azure.functions as func
import pytest

from shared.flows.context import Context, reset_context, set_context
from shared.settings import Settings, env_names

REPO = Path(__file__).resolve().parents[2]


def _load_function_app():
    # function_app.py sits at the repository root, outside the installed packages.
    if "function_app" not in sys.modules:
        spec = importlib.util.spec_from_file_location("function_app", REPO / "function_app.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules["function_app"] = module
        spec.loader.exec_module(module)
    return sys.modules["function_app"]


function_app = _load_function_app()
FUNCTION_NAMES = {"on_landing_event", "close_quiet_batches", "on_aml_event", "deploy_group", "reconcile",
                  "train", "forecast", "deploy", "status", "health"}


@pytest.fixture(scope="module")
def functions() -> dict[str, object]:
    # get_functions() may be called once per app object: build a fresh app for this module.
    return {f.get_function_name(): f for f in function_app.create_app().get_functions()}


@pytest.fixture
def context(settings: Settings):
    ctx = Context(settings)
    set_context(ctx)
    yield ctx
    reset_context()


def call(functions, name: str, method: str, body: bytes = b"") -> tuple[int, dict]:
    request = func.HttpRequest(method=method, url=f"http://127.0.0.1:7071/api/{name}", body=body, headers={})
    response = functions[name].get_user_function()(request)
    return response.status_code, json.loads(response.get_body())


def test_function_names_and_bindings_are_the_contract(functions) -> None:
    assert set(functions) == FUNCTION_NAMES
    bindings = {n: f.get_bindings_dict()["bindings"][0] for n, f in functions.items()}
    assert bindings["deploy_group"]["queueName"] == "%DEPLOY_QUEUE%"
    assert bindings["deploy_group"]["connection"] == "AzureWebJobsStorage"
    assert bindings["close_quiet_batches"]["schedule"] == "0 * * * * *"
    assert {bindings[n]["type"] for n in ("on_landing_event", "on_aml_event")} == {"eventGridTrigger"}
    routes = {n: (b["route"], [str(m) for m in b["methods"]], str(b["authLevel"]))
              for n, b in bindings.items() if b["type"] == "httpTrigger"}
    assert routes["train"][0] == "train" and "POST" in routes["train"][1][0]
    assert routes["status"][0] == "status" and "GET" in routes["status"][1][0]
    assert all("FUNCTION" in level.upper() for _, _, level in routes.values())


@pytest.mark.parametrize(("name", "body", "field"), [
    ("train", b"{not json", "not valid JSON"),
    ("train", b"[1, 2]", "JSON object"),
    ("train", b'{"mode": "some"}', "'mode'"),
    ("train", b'{"dataset_version": "3"}', "'dataset_version'"),
    ("train", b'{"dataset_version": 0}', "'dataset_version'"),
    ("train", b'{"modes": "all"}', "'modes'"),
    ("forecast", b'{"dataset_version": true}', "'dataset_version'"),
    ("deploy", b'{"target": "k8s"}', "'target'"),
    ("deploy", b'{"dry_run": "yes"}', "'dry_run'"),
    ("deploy", b'{"reset": 1}', "'reset'"),
])
def test_bad_requests_answer_400_naming_the_field(functions, context, name: str, body: bytes, field: str) -> None:
    status, answer = call(functions, name, "POST", body)
    assert status == 400
    assert field in answer["error"] and answer["code"] == "INVALID_VALUE"
    assert "Traceback" not in answer["error"]


def test_deploy_to_a_target_not_enabled_is_400(functions, context) -> None:
    status, answer = call(functions, "deploy", "POST", b'{"target": "aks"}')
    assert status == 400 and "not enabled" in answer["error"] and "local" in answer["error"]


def test_unexpected_errors_answer_500_without_details(functions, settings, monkeypatch) -> None:
    class Broken(Context):
        @property
        def workspace(self):
            raise RuntimeError("secret-ish internal detail at /very/private/path")

    set_context(Broken(settings))
    try:
        status, answer = call(functions, "train", "POST", b"{}")
    finally:
        reset_context()
    assert status == 500
    assert "private" not in json.dumps(answer) and answer["code"] == "INTERNAL"


def test_health_needs_no_storage(functions, context) -> None:
    status, answer = call(functions, "health", "GET")
    assert status == 200 and answer["status"] == "ok" and answer["backend"] == "local"


def test_local_settings_example_lists_every_setting() -> None:
    values = json.loads((REPO / "local.settings.example.json").read_text())["Values"]
    assert set(env_names()) <= set(values), sorted(set(env_names()) - set(values))
    assert values["FUNCTIONS_WORKER_RUNTIME"] == "python"
    Settings.from_env({k: v for k, v in values.items() if isinstance(v, str)})  # the defaults are valid


def test_host_json() -> None:
    host = json.loads((REPO / "host.json").read_text())
    assert host["version"] == "2.0"
    assert host["extensionBundle"] == {"id": "Microsoft.Azure.Functions.ExtensionBundle", "version": "[4.*, 5.0.0)"}
    assert host["extensions"]["queues"]["messageEncoding"] == "base64"
    assert host["functionTimeout"]


DEEP = b"[" * 100_000 + b"]" * 100_000
RANGE = "field 'dataset_version' must be a whole number from 1 to 2147483647, "


@pytest.mark.parametrize("name", ["train", "forecast"])
@pytest.mark.parametrize(("body", "words"), [
    (b'{"dataset_version": 100000000000000000000}', RANGE + "got 100000000000000000000"),
    (b'{"dataset_version": 2147483648}', RANGE + "got 2147483648"),
    (b'{"dataset_version": 1e20}', RANGE + "got 1e+20"),
    (b'{"dataset_version": 2.0}', RANGE + "got 2.0"),
    (b'{"dataset_version": -1}', RANGE + "got -1"),
    (b'{"dataset_version": 0}', RANGE + "got 0"),
    (b'{"dataset_version": false}', RANGE + "got false"),
    (b'{"dataset_version": NaN}', "NaN is not a JSON value"),
    (b'{"dataset_version": -Infinity}', "-Infinity is not a JSON value"),
    (b'{"dataset_version": 1e400}', "out of the range"),
    (b'{"dataset_version": 1' + b"0" * 5000 + b"}", "5001 digits is too long"),
    (DEEP, "nested too deeply"),
    (b'{"dataset_version": ' + DEEP + b"}", "nested too deeply"),
    (b'{"a": ' + b"[" * 100 + b"]" * 100 + b"}", "nested 101 levels deep"),
    (b'\xff\xfe{"dataset_version": 1}', "not UTF-8 text: byte 0xff at offset 0"),
    (b'{"mode": "\xe9t\xe9"}', "not UTF-8 text: byte 0xe9 at offset 10"),
    (b"null", "must be a JSON object, got null"),
    (b'"train"', "must be a JSON object, got a string"),
    (b"[]", "must be a JSON object, got an array"),
])
def test_numbers_out_of_range_and_hostile_json_answer_400(functions, context, name: str, body: bytes,
                                                         words: str) -> None:
    # 10**20 reached SQLite (OverflowError) and 100k nested arrays raised RecursionError: both
    # answered 500; the number is refused naming the field, the value and the allowed range
    status, answer = call(functions, name, "POST", body)
    assert (status, answer["code"]) == (400, "INVALID_VALUE"), answer
    assert words in answer["error"]


def test_the_largest_allowed_dataset_version_is_parsed() -> None:
    from shared.flows.forecast import ForecastRequest
    from shared.flows.train import TrainRequest

    assert TrainRequest.parse(b'{"dataset_version": 2147483647}').dataset_version == 2**31 - 1
    assert ForecastRequest.parse(b'\xef\xbb\xbf{"dataset_version": 1}').dataset_version == 1  # BOM tolerated
    assert TrainRequest.parse(b"  ") == TrainRequest()


@pytest.mark.parametrize("body", [b'{"dry_run": NaN}', DEEP, b"\xc3\x28", b"null"])
def test_deploy_refuses_hostile_json_with_400(functions, context, body: bytes) -> None:
    status, answer = call(functions, "deploy", "POST", body)
    assert (status, answer["code"]) == (400, "INVALID_VALUE"), answer
