"""Queue triggers on Azure Storage queues (Azurite locally), with the Functions host's semantics.

- Messages are fetched in batches and hidden while a function runs (the lease is renewed, so a
  long invocation keeps its message; a killed host's messages reappear when the lease ends).
- Success deletes the message. Failure makes it visible again after ``visibilityTimeout``; once
  its dequeue count reaches ``maxDequeueCount`` (5) it moves to ``<queue>-poison`` instead.
- Bodies are base64 (``messageEncoding`` of host.json, default ``base64``): a message that is not
  valid base64 goes straight to the poison queue, as the host cannot bind it.
- Polling backs off exponentially up to ``maxPollingInterval`` while the queue is empty.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from azure.core.exceptions import AzureError, ResourceExistsError, ResourceNotFoundError
from azure.storage.queue import QueueClient, QueueMessage, QueueServiceClient

from shared.devhost.bindings import queue_message
from shared.devhost.functions import FunctionSpec
from shared.devhost.invoke import Invocation

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class QueueOptions:
    """The ``extensions.queues`` section of host.json (Azure's defaults, local polling cap)."""

    batch_size: int = 16
    max_dequeue_count: int = 5
    visibility_timeout: float = 0.0  # seconds before a failed message is visible again
    max_polling_interval: float = 2.0
    message_encoding: str = "base64"
    lease_seconds: float = 30.0  # how long a message stays hidden per (renewed) lease


Run = Callable[[FunctionSpec, Any], Invocation]


class QueueListener:
    def __init__(self, spec: FunctionSpec, service: QueueServiceClient, queue_name: str, run: Run, *,
                 options: QueueOptions | None = None) -> None:
        self.spec = spec
        self.queue_name = queue_name
        self.options = options or QueueOptions()
        self._queue: QueueClient = service.get_queue_client(queue_name)
        self._poison: QueueClient = service.get_queue_client(f"{queue_name}-poison")
        self._run = run
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(max_workers=self.options.batch_size, thread_name_prefix=f"queue-{spec.name}")
        # message id -> latest pop receipt, for renewal and delete (the SDK types it Optional; a received or
        # updated message always has one)
        self._receipts: dict[str, str | None] = {}
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        for target, name in ((self._poll_loop, "poll"), (self._renew_loop, "renew")):
            thread = threading.Thread(target=target, name=f"queue-{self.spec.name}-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, *, timeout: float = 30.0) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout)
        self._pool.shutdown(wait=True, cancel_futures=True)

    # ---------------------------------------------------------------- polling

    def _poll_loop(self) -> None:
        wait = 0.1
        created = False
        while not self._stop.is_set():
            try:
                if not created:
                    _create(self._queue)
                    created = True
                got = self._receive()
            except AzureError as e:
                log.warning("queue %s is not reachable (%s); retrying", self.queue_name, e)
                got = 0
            wait = 0.1 if got else min(self.options.max_polling_interval, wait * 2)
            self._stop.wait(0.05 if got else wait)

    def _receive(self) -> int:
        with self._lock:
            free = self.options.batch_size - len(self._receipts)
        if free <= 0:
            return 0
        messages = list(self._queue.receive_messages(messages_per_page=min(32, free), max_messages=min(32, free),
                                                     visibility_timeout=int(self.options.lease_seconds)))
        for message in messages:
            with self._lock:
                self._receipts[message.id] = message.pop_receipt
            self._pool.submit(self._process, message)
        return len(messages)

    def _renew_loop(self) -> None:
        while not self._stop.wait(self.options.lease_seconds / 3):
            with self._lock:
                held = list(self._receipts)
            for message_id in held:
                # under the lock: a message being released is never renewed behind its handler's back
                with self._lock:
                    receipt = self._receipts.get(message_id)
                    if receipt is None:
                        continue
                    try:
                        renewed = self._queue.update_message(message_id, receipt,
                                                             visibility_timeout=int(self.options.lease_seconds))
                    except AzureError:
                        continue  # storage down: the lease simply ends and the message reappears
                    self._receipts[message_id] = renewed.pop_receipt

    # ---------------------------------------------------------------- one message

    def _process(self, message: QueueMessage) -> None:
        try:
            self._handle(message)
        except Exception:
            log.exception("queue %s: handling message %s failed; it will be retried", self.queue_name, message.id)
        finally:
            with self._lock:
                self._receipts.pop(message.id, None)

    def _handle(self, message: QueueMessage) -> None:
        count = int(message.dequeue_count or 1)
        if count > self.options.max_dequeue_count:
            self._to_poison(message, self._receipt(message),
                            f"dequeued {count} times (max {self.options.max_dequeue_count})")
            return
        try:
            body = self._decode(message.content)
        except ValueError as e:
            self._to_poison(message, self._receipt(message), str(e))
            return
        value: Any = queue_message(id=message.id, body=body, dequeue_count=count,
                                   insertion_time=message.inserted_on, expiration_time=message.expires_on,
                                   next_visible=message.next_visible_on, pop_receipt=message.pop_receipt)
        annotation = self.spec.annotation(self.spec.trigger_param)
        if annotation is str:
            value = body.decode("utf-8", errors="replace")
        elif annotation is bytes:
            value = body
        result = self._run(self.spec, value)
        receipt = self._receipt(message)
        if result.ok:
            _ignore_missing(self._queue.delete_message, message.id, receipt)
        elif count >= self.options.max_dequeue_count:
            self._to_poison(message, receipt, f"failed {count} times, last: {result.error}")
        else:
            _ignore_missing(self._queue.update_message, message.id, receipt,
                            visibility_timeout=int(self.options.visibility_timeout))

    def _decode(self, content: Any) -> bytes:
        raw = content if isinstance(content, bytes) else str(content or "").encode()
        if self.options.message_encoding.lower() != "base64":
            return raw
        try:
            return base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("the message is not valid base64 (host.json messageEncoding is base64; "
                             "send it with TextBase64EncodePolicy)") from None

    def _receipt(self, message: QueueMessage) -> str | None:
        """Release the message from lease renewal; its latest pop receipt."""
        with self._lock:
            return self._receipts.pop(message.id, message.pop_receipt)

    def _to_poison(self, message: QueueMessage, receipt: str | None, reason: str) -> None:
        _create(self._poison)
        self._poison.send_message(message.content)
        _ignore_missing(self._queue.delete_message, message.id, receipt)
        log.error("queue %s: message %s moved to %s-poison: %s", self.queue_name, message.id, self.queue_name,
                  reason, extra={"function": self.spec.name, "trigger": str(self.spec.kind)})


def _create(queue: QueueClient) -> None:
    with contextlib.suppress(ResourceExistsError):
        queue.create_queue()


def _ignore_missing(call: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
    # the lease ended and another receiver has it, or it is gone already
    with contextlib.suppress(ResourceNotFoundError):
        call(*args, **kwargs)

