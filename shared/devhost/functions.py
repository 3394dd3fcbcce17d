"""Import a Function App module and index its functions from ``app.get_functions()``.

The host reads each function's bindings in their ``function.json`` form (what the Python worker
sends the Functions host when it indexes a v2 app), so a new function, trigger or route needs no
host change. ``get_functions()`` is called once per app object: the library refuses a second call
(it remembers the names it validated).
"""

from __future__ import annotations

import importlib.util
import inspect
import json
import os
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from types import ModuleType
from typing import Any

from azure.functions.decorators.function_app import Function, FunctionRegister

from shared.errors import InvalidValue, SettingsError


class TriggerKind(StrEnum):
    HTTP = "httpTrigger"
    EVENT_GRID = "eventGridTrigger"
    QUEUE = "queueTrigger"
    TIMER = "timerTrigger"
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class FunctionSpec:
    """One function of the app: its name, trigger binding and the user's callable."""

    name: str
    kind: TriggerKind
    trigger: Mapping[str, Any]  # the trigger binding, function.json form (type, name, route, ...)
    bindings: tuple[Mapping[str, Any], ...]
    call: Callable[..., Any] = field(repr=False)
    parameters: tuple[str, ...] = ()
    directory: str = ""

    @property
    def trigger_param(self) -> str:
        return str(self.trigger["name"])

    def annotation(self, param: str) -> Any:
        try:
            return inspect.signature(self.call).parameters[param].annotation
        except (KeyError, ValueError, TypeError):
            return inspect.Parameter.empty


def load_module(app_path: Path) -> ModuleType:
    """Import ``function_app.py`` (or a test's toy app) with its directory first on ``sys.path``."""
    app_path = app_path.resolve()
    if not app_path.is_file():
        raise SettingsError(f"Function App module {app_path} does not exist: pass the path of function_app.py")
    app_dir = str(app_path.parent)
    if app_dir not in sys.path:
        sys.path.insert(0, app_dir)
    module_name = app_path.stem
    spec = importlib.util.spec_from_file_location(module_name, app_path)
    if spec is None or spec.loader is None:
        raise SettingsError(f"cannot import {app_path}: not a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


def find_app(module: ModuleType) -> FunctionRegister:
    """The module's one ``func.FunctionApp`` (the worker indexes the app object it finds)."""
    apps = [v for v in vars(module).values() if isinstance(v, FunctionRegister)]
    if len(apps) != 1:
        raise SettingsError(f"{module.__file__} must define exactly one func.FunctionApp; found {len(apps)}")
    return apps[0]


# app id -> (the app, its functions); holding the app keeps its id from being reused
_INDEXED: dict[int, tuple[FunctionRegister, tuple[FunctionSpec, ...]]] = {}


def index_app(app: FunctionRegister, *, directory: str = "") -> tuple[FunctionSpec, ...]:
    """Every function of ``app`` (cached per app object: ``get_functions()`` runs once)."""
    cached = _INDEXED.get(id(app))
    if cached is None or cached[0] is not app:
        cached = (app, tuple(_spec(f, directory) for f in app.get_functions()))
        _INDEXED[id(app)] = cached
    return cached[1]


def _spec(function: Function, directory: str) -> FunctionSpec:
    raw = json.loads(function.get_function_json())
    bindings = tuple(raw.get("bindings", []))
    trigger = next(b for b in bindings if str(b.get("type", "")).endswith("Trigger"))
    try:
        kind = TriggerKind(trigger["type"])
    except ValueError:
        kind = TriggerKind.OTHER
    user = function.get_user_function()
    try:
        params = tuple(inspect.signature(user).parameters)
    except (ValueError, TypeError):
        params = (trigger["name"],)
    name = function.get_function_name()
    if not name:  # the library names a function after its callable unless function_name says otherwise
        raise SettingsError(f"function {getattr(user, '__name__', user)!r} has an empty function_name: "
                            "give @app.function_name a name")
    return FunctionSpec(name=name, kind=kind, trigger=trigger, bindings=bindings,
                        call=user, parameters=params, directory=directory)


_APP_SETTING = re.compile(r"%([^%]+)%")


def resolve_setting(value: str, *, environ: Mapping[str, str] | None = None, what: str = "binding") -> str:
    """Resolve ``%NAME%`` app-setting expressions in a binding property, like the Functions host."""
    env = os.environ if environ is None else environ

    def one(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in env:
            raise InvalidValue(f"{what} uses the app setting %{name}% but {name} is not set in the environment")
        return env[name]

    return _APP_SETTING.sub(one, value)


def by_name(specs: tuple[FunctionSpec, ...]) -> dict[str, FunctionSpec]:
    return {s.name: s for s in specs}
