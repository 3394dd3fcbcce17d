"""The local host: one process running ``function_app.py`` with every trigger it declares.

``LocalHost(settings, options).start()`` imports the app, indexes its functions once, then starts
the HTTP server, the local Event Grid (fed by blob polling, the workspace outbox and publishes to
custom topics on ``/topics/<topic>/api/events``, shared/devhost/topics.py), and a
listener per queue and timer function. ``stop()`` stops them in the reverse order, letting running
invocations finish; anything not delivered yet stays queued in ``<home>/eventgrid`` for the next host.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shared.devhost import subscriptions as subs
from shared.devhost.bindings import event_input
from shared.devhost.blobevents import TOPIC as STORAGE_TOPIC
from shared.devhost.blobevents import BlobCreatedSource
from shared.devhost.eventgrid import DeliveryPolicy, DeliveryResult, LocalEventGrid
from shared.devhost.eventgrid import summary as eventgrid_summary
from shared.devhost.functions import (
    FunctionSpec,
    TriggerKind,
    by_name,
    find_app,
    index_app,
    load_module,
    resolve_setting,
)
from shared.devhost.grid_access import HomeEventGrid
from shared.devhost.hostconfig import HostConfig
from shared.devhost.invoke import Invocation, invoke
from shared.devhost.keys import HostKeys, load_or_create
from shared.devhost.outboxes import OutboxPump
from shared.devhost.queues import QueueListener
from shared.devhost.server import HostServer
from shared.devhost.timers import Schedule, TimerListener
from shared.devhost.topics import PublishEndpoint, TopicSubscriptions, deliver_webhook
from shared.devhost.topics import summary as topics_summary
from shared.errors import InvalidValue
from shared.flows.context import provide_local_event_grid
from shared.paths import REPO_ROOT
from shared.settings import Settings
from shared.storage.account import StorageAccount

log = logging.getLogger(__name__)

DEFAULT_PORT = 7071


@dataclass(frozen=True, slots=True)
class HostOptions:
    app_path: Path = REPO_ROOT / "function_app.py"
    port: int = DEFAULT_PORT  # 0: a free port
    subscriptions_path: Path = subs.DEFAULT_FILE
    poll_interval: float = 1.0  # blob listing and outbox polling
    delivery: DeliveryPolicy = field(default_factory=DeliveryPolicy)
    queue_max_polling: float = 2.0
    queue_lease_seconds: float = 30.0


class LocalHost:
    def __init__(self, settings: Settings, options: HostOptions | None = None) -> None:
        self.settings = settings
        self.options = options or HostOptions()
        self.home = settings.home
        self.keys: HostKeys = load_or_create(self.home)
        app_path = self.options.app_path.resolve()
        self.config = HostConfig.load(app_path.parent, max_polling_cap=self.options.queue_max_polling,
                                      lease_seconds=self.options.queue_lease_seconds)
        module = load_module(app_path)
        self.functions: dict[str, FunctionSpec] = by_name(index_app(find_app(module), directory=str(app_path.parent)))
        self.disabled = {n for n in self.functions if _disabled(n)}
        self.subscriptions = subs.load(self.options.subscriptions_path, landing_container=settings.landing_container)
        self._check_subscriptions()
        self.account = StorageAccount(settings.storage_connection)
        self.grid = LocalEventGrid(self.home, self.subscriptions, self._deliver, policy=self.options.delivery,
                                   more_subscriptions=TopicSubscriptions(self.home))
        self.server = HostServer(tuple(s for s in self.functions.values() if s.name not in self.disabled), self.keys,
                                 port=self.options.port, route_prefix=self.config.route_prefix, status=self.status,
                                 publish=PublishEndpoint(self.home, self.grid).handle)
        self._parts: list[Any] = []
        self._previous_grid_factory: Any = None

    @property
    def url(self) -> str:
        return self.server.url

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        # the functions run in this process: their flows publish to this machine's Event Grid
        self._previous_grid_factory = provide_local_event_grid(HomeEventGrid.of)
        self.grid.start()
        self._parts.append(self.grid)
        storage_subs = [s for s in self.subscriptions if s.topic == STORAGE_TOPIC]
        if storage_subs:
            named = [s.container for s in storage_subs if s.container is not None]
            # one subscription without a container filter means every container is watched
            containers = named if len(named) == len(storage_subs) else None
            source = BlobCreatedSource(self.grid, self.account.blob_service(), containers=containers,
                                       interval=self.options.poll_interval)
            source.start()
            self._parts.append(source)
        pump = OutboxPump(self.grid, self.grid.topics(), interval=min(0.5, self.options.poll_interval))
        pump.start()
        self._parts.append(pump)
        for spec in self.functions.values():
            listener = self._listener(spec)
            if listener is not None:
                listener.start()
                self._parts.append(listener)
        self.server.start()
        self._parts.append(self.server)
        enabled = sorted(n for n in self.functions if n not in self.disabled)
        log.info("host started on %s with %d function(s): %s", self.url, len(enabled), ", ".join(enabled))

    def stop(self) -> None:
        for part in reversed(self._parts):
            try:
                part.stop()
            except Exception:
                log.exception("stopping %s failed", type(part).__name__)
        self._parts.clear()
        self.grid.store.close()
        provide_local_event_grid(self._previous_grid_factory)
        log.info("host stopped")

    def status(self) -> dict[str, Any]:
        return {
            "state": "Running",
            "url": self.url,
            "functions": [{"name": s.name, "trigger": str(s.kind), "disabled": s.name in self.disabled}
                          for s in self.functions.values()],
            "eventgrid": eventgrid_summary(self.home),
            "topics": topics_summary(self.home),
        }

    # ------------------------------------------------------------------ triggers

    def _listener(self, spec: FunctionSpec) -> Any:
        if spec.name in self.disabled:
            log.info("function %s is disabled (AzureWebJobs.%s.Disabled)", spec.name, spec.name)
            return None
        try:
            if spec.kind is TriggerKind.QUEUE:
                queue = resolve_setting(str(spec.trigger["queueName"]), what=f"{spec.name} queueName")
                service = StorageAccount(self._connection(spec)).queue_service()
                return QueueListener(spec, service, queue, self._run, options=self.config.queues)
            if spec.kind is TriggerKind.TIMER:
                schedule = Schedule(resolve_setting(str(spec.trigger["schedule"]), what=f"{spec.name} schedule"))
                return TimerListener(spec, schedule, self._run, state_dir=self.home / "devhost" / "timers",
                                     run_on_startup=bool(spec.trigger.get("runOnStartup")),
                                     use_monitor=spec.trigger.get("useMonitor") is not False)
        except InvalidValue as e:  # like the Functions host: this function's listener fails, the others run
            log.error("function %s cannot start: %s", spec.name, e.message)
            return None
        if spec.kind is TriggerKind.OTHER:
            log.warning("function %s has a %s trigger, which the local host does not run", spec.name,
                        spec.trigger.get("type"))
        return None

    def _connection(self, spec: FunctionSpec) -> str:
        name = str(spec.trigger.get("connection") or "AzureWebJobsStorage")
        for key in (name, f"{name}__queueServiceUri", f"{name}__serviceUri"):
            if os.environ.get(key):
                return os.environ[key]
        if name == "AzureWebJobsStorage":
            return self.settings.storage_connection
        raise InvalidValue(f"{spec.name}: connection {name!r} is not set: set the environment variable {name}")

    def _run(self, spec: FunctionSpec, value: Any) -> Invocation:
        return invoke(spec, value)

    def _deliver(self, sub: subs.Subscription, event: Mapping[str, Any], attempt: int,
                 max_attempts: int) -> DeliveryResult:
        if sub.webhook_url:  # a custom topic's subscriber
            return deliver_webhook(sub, event, attempt, max_attempts)
        spec = self.functions.get(sub.function)
        if spec is None or spec.kind is not TriggerKind.EVENT_GRID or spec.name in self.disabled:
            return DeliveryResult(404, f"no enabled Event Grid function named {sub.function!r}")
        try:
            value = event_input(event)
        except (ValueError, TypeError) as e:
            return DeliveryResult(400, f"the event could not be read: {e}")
        result = invoke(spec, value, attempt=attempt, max_attempts=max_attempts)
        return DeliveryResult(200) if result.ok else DeliveryResult(500, result.error or "function failed")

    def _check_subscriptions(self) -> None:
        for sub in self.subscriptions:
            spec = self.functions.get(sub.function)
            if spec is None or spec.kind is not TriggerKind.EVENT_GRID:
                log.warning("Event Grid subscription %s targets %s, which is not an Event Grid function of the app: "
                            "its events will be dead-lettered", sub.name, sub.function)


def _disabled(name: str) -> bool:
    return os.environ.get(f"AzureWebJobs.{name}.Disabled", "").strip().lower() in ("true", "1")
