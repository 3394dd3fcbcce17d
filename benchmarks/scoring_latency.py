"""Latency of forecasts from local scoring services, called directly and through the router.

Trains N ``lr`` models, registers them in a throw-away local workspace, deploys them with the
real deploy flow (``MAX_CONTAINER_SIZE`` = ceil(N / groups), so 2+ groups) behind the router, then
sends one-record requests at a fixed concurrency, alternating rounds of direct-to-service and
through-the-router calls in the same run so both see the same machine load. The load generator is
one thread with an event loop over keep-alive connections (it shares the cores with the services).
Every service is stopped at the end.

    .venv/bin/python benchmarks/scoring_latency.py --models 1000 --json

Last line: ``{"models", "groups", "direct_p50_ms", "direct_p99_ms", "routed_p50_ms", "routed_p99_ms",
"routed_rps", ...}`` plus the CPU each request cost the router and the groups (machine-load
independent) and the 1-minute load average (this machine is shared: latency depends on it).
"""

from __future__ import annotations

import argparse
import dataclasses
import http.client
import json
import math
import os
import random
import selectors
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script: make the checkout importable
from shared.paths import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "scoring"))

import forecaster
import numpy as np
import pandas as pd
import routing_webservice  # its HTTP/1.1 connection is the load generator's

from shared.flows import deploy as flow
from shared.settings import Settings
from shared.workspace.base import NewModel
from shared.workspace.local.workspace import LocalWorkspace

SETTINGS = forecaster.ScriptSettings(id_columns=("Store", "Brand"), target_column="Quantity",
                                     timestamp_column="WeekStarting", test_size=8, freq="W-THU", horizon=8)


def train(folder: Path, n: int, *, weeks: int = 60, seed: int = 0, model_type: str = "lr") -> list[NewModel]:
    rng = np.random.default_rng(seed)
    price = rng.uniform(1.5, 3.5, (n, weeks))
    advert = rng.integers(0, 2, (n, weeks))
    quantity = 9000 - 1500 * price + 900 * advert + rng.normal(0, 300, (n, weeks))
    frame = pd.DataFrame({"WeekStarting": np.tile(pd.date_range("1990-06-14", periods=weeks, freq="W-THU"), n),
                          "Store": np.repeat(np.arange(1000, 1000 + n).astype(str), weeks), "Brand": "dominicks",
                          "Advert": advert.ravel(), "Price": price.ravel(), "Quantity": quantity.ravel().round()})
    settings = dataclasses.replace(SETTINGS, model_type=model_type)
    series, _ = forecaster.split_series(frame, settings)
    news = []
    for result in forecaster.fit_many(series, settings, ["Advert", "Price"]):
        path = folder / result.model.name
        result.model.save(path)
        store = result.model.name.rsplit("_", 1)[1]
        news.append(NewModel(result.model.name, str(path), {"ModelType": str(result.model.kind), "Store": store,
                                                             "Brand": "dominicks"}))
    return news


def body(store: str, model_type: str = "lr") -> bytes:
    record = {"id": {"Store": store, "Brand": "dominicks"}, "model_type": model_type, "forecast_freq": "W-THU",
              "forecast_horizon": 1, "data": {"future": {"Price": [2.5], "Advert": [1]}}}
    return json.dumps([record]).encode()


JSON_HEADERS = {"Content-Type": "application/json"}


class _Slot:
    """One in-flight request of the load generator and its keep-alive connections (one per service)."""

    __slots__ = ("conn", "conns", "index", "retried", "started")

    def __init__(self) -> None:
        self.conns: dict[str, routing_webservice.Connection] = {}
        self.conn: routing_webservice.Connection | None = None  # the one the selector watches
        self.index, self.started, self.retried = -1, 0.0, False

    def watch(self, selector: selectors.BaseSelector, conn: routing_webservice.Connection | None) -> None:
        if self.conn is not None:
            selector.unregister(self.conn.sock)
        self.conn = conn
        if conn is not None:
            selector.register(conn.sock, selectors.EVENT_READ, self)

    def drop(self, selector: selectors.BaseSelector, service: str) -> None:
        conn = self.conns.pop(service, None)
        if conn is not None:
            if conn is self.conn:
                self.watch(selector, None)
            conn.close()

    def send(self, selector: selectors.BaseSelector, endpoint: routing_webservice.Endpoint, payload: bytes,
             *, fresh: bool = False) -> None:
        """POST on this slot's connection to ``endpoint`` (a new one when ``fresh`` or when sending fails)."""
        for attempt in (0, 1):
            if fresh or attempt:
                self.drop(selector, endpoint.service)
            conn = self.conns.get(endpoint.service)
            if conn is None:
                conn = self.conns[endpoint.service] = routing_webservice.Connection(endpoint)
            if conn is not self.conn:
                self.watch(selector, conn)
            try:
                conn.request("POST", endpoint.path, body=payload, headers=JSON_HEADERS)
                return
            except ConnectionError:
                if attempt:
                    raise


def _endpoint(uri: str) -> routing_webservice.Endpoint:
    url = urlsplit(uri)
    return routing_webservice.Endpoint(url.netloc, False, url.hostname or "127.0.0.1", url.port or 80, url.path, {})


class Client:
    """The load generator: ``concurrency`` requests in flight from one thread (an event loop over
    keep-alive connections, as ``wrk`` does), on the router's own lean HTTP/1.1 connection. It shares
    the 2 cores with the services it measures, so it must cost little: a thread per connection with
    ``http.client`` cost 2-3x the CPU per call."""

    def __init__(self) -> None:
        self.slots: list[_Slot] = []

    def measure(self, calls: list[tuple[str, bytes]], concurrency: int) -> tuple[list[float], float]:
        """Send every call, keeping ``concurrency`` in flight; (latencies in ms, seconds taken)."""
        while len(self.slots) < concurrency:
            self.slots.append(_Slot())
        endpoints = {uri: _endpoint(uri) for uri in {uri for uri, _ in calls}}
        requests = [(endpoints[uri], payload) for uri, payload in calls]
        latencies = [0.0] * len(requests)
        pending = iter(range(len(requests)))
        started = time.perf_counter()
        with selectors.DefaultSelector() as selector:
            def start(slot: _Slot) -> bool:
                i = next(pending, None)
                if i is None:
                    slot.watch(selector, None)
                    return False
                slot.index, slot.started, slot.retried = i, time.perf_counter(), False
                slot.send(selector, *requests[i])
                return True

            active = sum(start(slot) for slot in self.slots[:concurrency])
            while active:
                events = selector.select(timeout=60)
                if not events:
                    raise TimeoutError(f"{active} requests unanswered for 60 s")
                for key, _ in events:
                    slot: _Slot = key.data
                    endpoint, payload = requests[slot.index]
                    try:
                        response = slot.conn.getresponse()  # small answers: all there once readable
                    except (ConnectionError, http.client.RemoteDisconnected):
                        if slot.retried:
                            raise
                        slot.retried = True  # a kept-alive connection the server closed: once more
                        slot.send(selector, endpoint, payload, fresh=True)
                        continue
                    if response.status != 200 or b'"forecast"' not in response.body:
                        raise RuntimeError(f"{endpoint.service}{endpoint.path} answered {response.status}: "
                                           f"{response.body[:300]!r}")
                    latencies[slot.index] = (time.perf_counter() - slot.started) * 1000
                    if response.will_close:
                        slot.drop(selector, endpoint.service)
                    active -= not start(slot)
        return latencies, time.perf_counter() - started

    def close(self) -> None:
        for slot in self.slots:
            for conn in slot.conns.values():
                conn.close()
            slot.conns.clear()
            slot.conn = None


def cpu_seconds(pids: list[int]) -> float:
    """CPU time used so far by these service processes and their workers (Linux /proc)."""
    total = 0
    for pid in pids:
        try:
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
            for p in [pid, *map(int, children)]:
                fields = Path(f"/proc/{p}/stat").read_text().rpartition(")")[2].split()
                total += int(fields[11]) + int(fields[12])
        except OSError:
            continue
    return total / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=1000)
    parser.add_argument("--groups", type=int, default=2, help="model-group services (container size = N / groups)")
    parser.add_argument("--requests", type=int, default=4000, help="requests per mode (direct, routed)")
    parser.add_argument("--rounds", type=int, default=4, help="alternating direct/routed rounds")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--json", action="store_true", help="only the JSON line")
    parser.add_argument("--model-type", default="lr", help="model_type to train and request (e.g. auto)")
    args = parser.parse_args(argv)
    # a TERM (timeout, CI cancel) unwinds like Ctrl-C, so the services are stopped on the way out
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    say = (lambda message: None) if args.json else (lambda message: print(message, file=sys.stderr))

    with tempfile.TemporaryDirectory(prefix="scoring-latency-") as tmp:
        size = math.ceil(args.models / args.groups)
        settings = Settings.from_env({"MANYMODELS_HOME": str(Path(tmp) / "home")}).replace(max_container_size=size)
        workspace = LocalWorkspace(settings)
        client = Client()
        try:
            say(f"training {args.models} models")
            records = workspace.models.register_many(train(Path(tmp) / "artifacts", args.models,
                                                           model_type=args.model_type))
            say("deploying")
            started = time.perf_counter()
            result = flow.deploy(workspace, settings, "local", progress=say)
            deploy_seconds = time.perf_counter() - started
            groups = [g for g in result.plan.groups]
            service_of = {m.name: workspace.services.get(g.service).scoring_uri for g in groups for m in g.models}
            router = result.router.scoring_uri
            router_pids = [workspace.services.process_info(result.router.name).pid]
            group_pids = [workspace.services.process_info(g.service).pid for g in groups]
            cpu = {"router_routed": 0.0, "groups_routed": 0.0, "groups_direct": 0.0, "client_routed": 0.0}
            rng = random.Random(0)
            stores = [r.name.rsplit("_", 1)[1] for r in records]
            direct: list[float] = []
            routed: list[float] = []
            routed_seconds = 0.0
            per_round = max(1, args.requests // args.rounds)
            # warm-up: open the connections and page everything in
            warm = [(router, body(s, args.model_type)) for s in rng.choices(stores, k=200)]
            name = f"{args.model_type}_dominicks_{{}}"
            client.measure(warm + [(service_of[name.format(s)], body(s, args.model_type))
                                   for s in rng.choices(stores, k=200)], args.concurrency)
            for round_ in range(args.rounds):
                picks = rng.choices(stores, k=per_round)
                calls_direct = [(service_of[name.format(s)], body(s, args.model_type)) for s in picks]
                calls_routed = [(router, body(s, args.model_type)) for s in picks]
                for mode in (("direct", "routed") if round_ % 2 == 0 else ("routed", "direct")):
                    r0, g0, c0 = cpu_seconds(router_pids), cpu_seconds(group_pids), time.process_time()
                    if mode == "direct":
                        direct += client.measure(calls_direct, args.concurrency)[0]
                        cpu["groups_direct"] += cpu_seconds(group_pids) - g0
                    else:
                        latencies, seconds = client.measure(calls_routed, args.concurrency)
                        routed += latencies
                        routed_seconds += seconds
                        cpu["router_routed"] += cpu_seconds(router_pids) - r0
                        cpu["groups_routed"] += cpu_seconds(group_pids) - g0
                        cpu["client_routed"] += time.process_time() - c0
        finally:
            client.close()
            workspace.services.delete_all()
            workspace.close()

    out = {
        "models": args.models, "model_type": args.model_type, "groups": len(groups),
        "direct_p50_ms": round(statistics.median(direct), 2), "direct_p99_ms": round(percentile(direct, 0.99), 2),
        "routed_p50_ms": round(statistics.median(routed), 2), "routed_p99_ms": round(percentile(routed, 0.99), 2),
        "routed_rps": round(len(routed) / routed_seconds, 1),
        "routed_over_direct_p50": round(statistics.median(routed) / statistics.median(direct), 2),
        "requests_per_mode": len(routed), "concurrency": args.concurrency, "deploy_seconds": round(deploy_seconds, 1),
        # CPU per request, independent of what else the machine runs: where a routed call's time goes
        "group_cpu_ms_per_direct_request": round(cpu["groups_direct"] / len(direct) * 1000, 3),
        "router_cpu_ms_per_routed_request": round(cpu["router_routed"] / len(routed) * 1000, 3),
        "group_cpu_ms_per_routed_request": round(cpu["groups_routed"] / len(routed) * 1000, 3),
        # this process (the load generator); with 8 calls in flight on 2 saturated cores the routed
        # latency is about 8 x the sum of the three / 2
        "client_cpu_ms_per_routed_request": round(cpu["client_routed"] / len(routed) * 1000, 3),
        "load_average_1m": round(os.getloadavg()[0], 2),
    }
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
