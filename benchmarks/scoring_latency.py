"""Latency of forecasts from local scoring services, called directly and through the router.

Trains N ``lr`` models, registers them in a throw-away local workspace, deploys them with the
real deploy flow (``MAX_CONTAINER_SIZE`` = ceil(N / groups), so 2+ groups) behind the router, then
sends one-record requests at a fixed concurrency, alternating rounds of direct-to-service and
through-the-router calls in the same run so both see the same machine load. Every service is
stopped at the end.

    .venv/bin/python benchmarks/scoring_latency.py --models 1000 --json

Last line: ``{"models", "groups", "direct_p50_ms", "direct_p99_ms", "routed_p50_ms", "routed_p99_ms",
"routed_rps", ...}`` plus the CPU each request cost the router and the groups (machine-load
independent) and the 1-minute load average (this machine is shared: latency depends on it).
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scoring"))

import forecaster  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from shared.flows import deploy as flow  # noqa: E402
from shared.settings import Settings  # noqa: E402
from shared.workspace.base import NewModel  # noqa: E402
from shared.workspace.local.workspace import LocalWorkspace  # noqa: E402

SETTINGS = forecaster.ScriptSettings(id_columns=("Store", "Brand"), target_column="Quantity",
                                     timestamp_column="WeekStarting", test_size=8, freq="W-THU", horizon=8)


def train(folder: Path, n: int, *, weeks: int = 60, seed: int = 0) -> list[NewModel]:
    rng = np.random.default_rng(seed)
    price = rng.uniform(1.5, 3.5, (n, weeks))
    advert = rng.integers(0, 2, (n, weeks))
    quantity = 9000 - 1500 * price + 900 * advert + rng.normal(0, 300, (n, weeks))
    frame = pd.DataFrame({"WeekStarting": np.tile(pd.date_range("1990-06-14", periods=weeks, freq="W-THU"), n),
                          "Store": np.repeat(np.arange(1000, 1000 + n).astype(str), weeks), "Brand": "dominicks",
                          "Advert": advert.ravel(), "Price": price.ravel(), "Quantity": quantity.ravel().round()})
    series, _ = forecaster.split_series(frame, SETTINGS)
    news = []
    for result in forecaster.fit_many(series, SETTINGS, ["Advert", "Price"]):
        path = folder / result.model.name
        result.model.save(path)
        store = result.model.name.rsplit("_", 1)[1]
        news.append(NewModel(result.model.name, str(path), {"ModelType": "lr", "Store": store, "Brand": "dominicks"}))
    return news


def body(store: str) -> bytes:
    record = {"id": {"Store": store, "Brand": "dominicks"}, "model_type": "lr", "forecast_freq": "W-THU",
              "forecast_horizon": 1, "data": {"future": {"Price": [2.5], "Advert": [1]}}}
    return json.dumps([record]).encode()


class Client:
    """One keep-alive connection per (thread, endpoint): what a production client pool does."""

    def __init__(self) -> None:
        self.local = threading.local()

    def post(self, uri: str, payload: bytes) -> None:
        conns = self.local.__dict__.setdefault("conns", {})
        url = urlsplit(uri)
        for attempt in (0, 1):
            conn = conns.get(url.netloc)
            if conn is None:
                conn = conns[url.netloc] = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
            try:
                conn.request("POST", url.path, body=payload, headers={"Content-Type": "application/json"})
                response = conn.getresponse()
                data = response.read()
                if response.status != 200 or b'"forecast"' not in data:
                    raise RuntimeError(f"{uri} answered {response.status}: {data[:300]!r}")
                return
            except (ConnectionError, http.client.RemoteDisconnected, http.client.BadStatusLine):
                conn.close()
                conns.pop(url.netloc, None)
                if attempt:
                    raise


def measure(client: Client, calls: list[tuple[str, bytes]], concurrency: int) -> tuple[list[float], float]:
    latencies: list[float] = []
    lock = threading.Lock()
    position = iter(range(len(calls)))

    def worker() -> None:
        mine = []
        while True:
            with lock:
                i = next(position, None)
            if i is None:
                break
            uri, payload = calls[i]
            started = time.perf_counter()
            client.post(uri, payload)
            mine.append((time.perf_counter() - started) * 1000)
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return latencies, time.perf_counter() - started


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
    args = parser.parse_args(argv)
    say = (lambda message: None) if args.json else (lambda message: print(message, file=sys.stderr))

    with tempfile.TemporaryDirectory(prefix="scoring-latency-") as tmp:
        size = math.ceil(args.models / args.groups)
        settings = Settings.from_env({"MANYMODELS_HOME": str(Path(tmp) / "home")}).replace(max_container_size=size)
        workspace = LocalWorkspace(settings)
        try:
            say(f"training {args.models} models")
            records = workspace.models.register_many(train(Path(tmp) / "artifacts", args.models))
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
            client = Client()
            direct: list[float] = []
            routed: list[float] = []
            routed_seconds = 0.0
            per_round = max(1, args.requests // args.rounds)
            # warm-up: open the connections and page everything in
            warm = [(router, body(s)) for s in rng.choices(stores, k=200)]
            measure(client, warm + [(service_of[f"lr_dominicks_{s}"], body(s)) for s in rng.choices(stores, k=200)],
                    args.concurrency)
            for round_ in range(args.rounds):
                picks = rng.choices(stores, k=per_round)
                calls_direct = [(service_of[f"lr_dominicks_{s}"], body(s)) for s in picks]
                calls_routed = [(router, body(s)) for s in picks]
                for mode in (("direct", "routed") if round_ % 2 == 0 else ("routed", "direct")):
                    r0, g0, c0 = cpu_seconds(router_pids), cpu_seconds(group_pids), time.process_time()
                    if mode == "direct":
                        direct += measure(client, calls_direct, args.concurrency)[0]
                        cpu["groups_direct"] += cpu_seconds(group_pids) - g0
                    else:
                        latencies, seconds = measure(client, calls_routed, args.concurrency)
                        routed += latencies
                        routed_seconds += seconds
                        cpu["router_routed"] += cpu_seconds(router_pids) - r0
                        cpu["groups_routed"] += cpu_seconds(group_pids) - g0
                        cpu["client_routed"] += time.process_time() - c0
        finally:
            workspace.services.delete_all()
            workspace.close()

    out = {
        "models": args.models, "groups": len(groups),
        "direct_p50_ms": round(statistics.median(direct), 2), "direct_p99_ms": round(percentile(direct, 0.99), 2),
        "routed_p50_ms": round(statistics.median(routed), 2), "routed_p99_ms": round(percentile(routed, 0.99), 2),
        "routed_rps": round(len(routed) / routed_seconds, 1),
        "routed_over_direct_p50": round(statistics.median(routed) / statistics.median(direct), 2),
        "requests_per_mode": len(routed), "concurrency": args.concurrency, "deploy_seconds": round(deploy_seconds, 1),
        # CPU per request, independent of what else the machine runs: where a routed call's time goes
        "group_cpu_ms_per_direct_request": round(cpu["groups_direct"] / len(direct) * 1000, 3),
        "router_cpu_ms_per_routed_request": round(cpu["router_routed"] / len(routed) * 1000, 3),
        "group_cpu_ms_per_routed_request": round(cpu["groups_routed"] / len(routed) * 1000, 3),
        # this process's own threads (the HTTP client); with 8 calls in flight on 2 cores, the routed
        # latency is about 4 x the sum of the three
        "client_cpu_ms_per_routed_request": round(cpu["client_routed"] / len(routed) * 1000, 3),
        "load_average_1m": round(os.getloadavg()[0], 2),
    }
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
