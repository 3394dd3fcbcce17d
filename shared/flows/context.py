"""What every flow needs, built once per worker process: settings, workspace, ledger, storage,
the deploy queue, and (locally) the local host's Event Grid.

Triggers call :func:`get_context`; tests call :func:`set_context` with their own (or
:func:`reset_context` to rebuild from the environment). Clients are created lazily, so
``GET /api/health`` answers even when storage or the workspace cannot be opened.

The flows run on Azure and never import the local stand-ins of ``shared/devhost/`` (a contract
of ``[tool.importlinter]`` in pyproject.toml): what they need of the local Event Grid comes as a
:class:`LocalEventGrid`, given to the context by the process that runs one (the local host calls
:func:`provide_local_event_grid`; ``manymodels status`` passes its own).
"""

from __future__ import annotations

import functools
import json
import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from azure.core.exceptions import ResourceExistsError, ServiceRequestError
from azure.storage.queue import QueueClient, TextBase64DecodePolicy, TextBase64EncodePolicy

from shared import events, fields
from shared.errors import InvalidValue, Unavailable
from shared.ledger import Ledger
from shared.settings import Settings, get_settings
from shared.storage.account import StorageAccount
from shared.workspace import open_workspace
from shared.workspace.base import Workspace

log = logging.getLogger(__name__)


class LocalEventGrid(Protocol):
    """The local host's Event Grid as the flows see it (shared/devhost/grid_access.py implements it)."""

    def topic_access(self, topic: str) -> tuple[str, str]:
        """(endpoint, key) to publish to ``topic``, created on first use."""
        ...

    def summary(self) -> dict[str, Any]:
        """Pending deliveries and dead letters, for status pages."""
        ...


LocalEventGridFactory = Callable[[Settings], LocalEventGrid]
_provided_event_grid: LocalEventGridFactory | None = None


def provide_local_event_grid(factory: LocalEventGridFactory | None) -> LocalEventGridFactory | None:
    """What a process running the local Event Grid (shared/devhost/host.py) gives every context of
    the local backend that was not given one; returns the previous factory, to put back."""
    global _provided_event_grid
    previous, _provided_event_grid = _provided_event_grid, factory
    return previous


class Context:
    """Settings and clients of one process. Pass any of them to use it instead of the default."""

    def __init__(self, settings: Settings, *, workspace: Workspace | None = None, ledger: Ledger | None = None,
                 storage: StorageAccount | None = None, deploy_queue: QueueClient | None = None,
                 local_event_grid: LocalEventGrid | None = None) -> None:
        self.settings = settings
        self._local_event_grid = local_event_grid
        self._workspace = workspace
        self._ledger = ledger
        self._storage = storage
        self._deploy_queue = deploy_queue
        self._lock = threading.Lock()
        self._queue_ready = False

    @property
    def storage(self) -> StorageAccount:
        if self._storage is None:
            self._storage = StorageAccount(self.settings.storage_connection)
        return self._storage

    @property
    def workspace(self) -> Workspace:
        with self._lock:
            if self._workspace is None:
                self._workspace = open_workspace(self.settings)
            return self._workspace

    @property
    def local_event_grid(self) -> LocalEventGrid | None:
        """The local host's Event Grid: the one given, else the process's (local backend only), else None."""
        if self._local_event_grid is None and _provided_event_grid is not None and self.settings.backend == "local":
            self._local_event_grid = _provided_event_grid(self.settings)
        return self._local_event_grid

    @property
    def ledger(self) -> Ledger:
        with self._lock:
            if self._ledger is None:
                self._ledger = Ledger(self.storage.table_service().get_table_client(self.settings.ledger_table))
            return self._ledger

    @property
    def deploy_queue(self) -> QueueClient:
        """The deploy queue, with Base64 message text: what the Functions queue trigger decodes by
        default (host.json ``extensions.queues.messageEncoding: base64``)."""
        with self._lock:
            if self._deploy_queue is None:
                self._deploy_queue = self.storage.queue_service().get_queue_client(
                    self.settings.deploy_queue, message_encode_policy=TextBase64EncodePolicy(),
                    message_decode_policy=TextBase64DecodePolicy())
            return self._deploy_queue

    def enqueue(self, message: Mapping[str, Any]) -> None:
        """Put one JSON message on the deploy queue (created on first use)."""
        queue = self.deploy_queue
        if not self._queue_ready:
            try:
                queue.create_queue()
            except ResourceExistsError:
                pass
            except ServiceRequestError as e:
                raise Unavailable(f"queue storage is not reachable: {e}") from e
            self._queue_ready = True
        try:
            queue.send_message(json.dumps(dict(message), separators=(",", ":")))
        except ServiceRequestError as e:
            raise Unavailable(f"could not enqueue on {self.settings.deploy_queue}: {e}") from e

    def close(self) -> None:
        if self._workspace is not None:
            self._workspace.close()


_override: Context | None = None


@functools.cache
def _default() -> Context:
    return Context(get_settings())


def get_context() -> Context:
    """The process-wide context (or the one a test set)."""
    return _override if _override is not None else _default()


def set_context(context: Context | None) -> None:
    """Use ``context`` for every trigger of this process (tests); None goes back to the default."""
    global _override
    _override = context


def reset_context() -> None:
    """Forget every context: the next call rebuilds from the environment."""
    set_context(None)
    if _default.cache_info().currsize:
        _default().close()
    _default.cache_clear()


# --------------------------------------------------------------------------- request bodies


def json_object(body: bytes | str | None) -> dict[str, Any]:
    """A request body as a JSON object; empty means ``{}``. InvalidValue says what is wrong
    (the decoding rules, shared with the Event Grid webhook, are in shared/fields.py)."""
    return fields.json_object(body)


def known_fields(body: Mapping[str, Any], allowed: tuple[str, ...]) -> None:
    unknown = sorted(set(body) - set(allowed))
    if unknown:
        raise InvalidValue(f"unknown field {unknown[0]!r}; allowed fields: {', '.join(allowed)}")


def optional_int(body: Mapping[str, Any], name: str, *, minimum: int = 1,
                 maximum: int = fields.INT32_MAX) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    return fields.whole_number(value, field=name, minimum=minimum, maximum=maximum)


def optional_bool(body: Mapping[str, Any], name: str) -> bool:
    value = body.get(name, False)
    if not isinstance(value, bool):
        raise InvalidValue(f"field '{name}' must be true or false, got {value!r}")
    return value


def optional_choice(body: Mapping[str, Any], name: str, choices: tuple[str, ...]) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or value not in choices:
        raise InvalidValue(f"field '{name}' is {value!r}; allowed: {', '.join(choices)}")
    return value


# --------------------------------------------------------------------------- events


class Deferred(str):
    """A handler's outcome when the event came too early to act on (e.g. a RunCompleted while the
    workspace still reads the run as running): the event is acknowledged but not remembered as
    handled, so a redelivery of it is acted on."""

    __slots__ = ()


def handle_event(ctx: Context, delivery: Any, handlers: Mapping[type, Callable[[Context, Any], str]],
                 *, function: str, forget: tuple[type, ...] = ()) -> str:
    """Parse one event and run its handler once; returns the outcome (also logged).

    ``delivery`` is the event as the Functions worker hands it over (``func.EventGridEvent``,
    ``func.CloudEvent``) or its already decoded dict (:func:`shared.events.payload_of`).

    A malformed event, or one of a type this function does not handle, is acknowledged with a
    log line saying why (a retry could never succeed). A replay of an event already handled is
    skipped early, except for the types in ``forget``: their handlers' writes are idempotent
    anyway and they come by the thousand, so they save the two ledger calls. Anything else a
    handler raises propagates, so Event Grid delivers the event again. A :class:`Deferred` outcome
    is not remembered either.
    """
    try:
        event = events.parse(events.payload_of(delivery))
    except events.MalformedEvent as e:
        log.warning("%s: malformed event acknowledged without action: %s", function, e.message)
        return "malformed"
    if isinstance(event, events.SubscriptionValidation):
        log.info("%s: subscription validation event %s (the Functions host answers the handshake)",
                 function, event.id)
        return "validation"
    handler = handlers.get(type(event))
    if handler is None:
        kind = event.type if isinstance(event, events.UnknownEvent) else type(event).__name__
        log.info("%s: event %s of type %s ignored: this function does not handle it", function, event.id, kind)
        return "ignored"
    remember = not isinstance(event, forget)
    if remember and ctx.ledger.events.is_processed(event.id):
        log.info("%s: event %s already handled; replay skipped", function, event.id)
        return "duplicate"
    outcome = handler(ctx, event)
    if remember and not isinstance(outcome, Deferred):
        ctx.ledger.events.mark_processed(event.id, event_type=type(event).__name__, outcome=outcome)
    log.info("%s: event %s (%s %s): %s", function, event.id, type(event).__name__, event.subject, outcome)
    return outcome
