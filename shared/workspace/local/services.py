"""Local scoring services: each one an azureml-inference-server-http process on 127.0.0.1.

``LocalServiceStore(db, home=...)`` implements :class:`~shared.workspace.base.ServiceStore` for the
local target. A service is fed a model directory in Azure ML's multi-model layout
(``<dir>/<name>/<version>/``, symlinks into ``<home>/models``), started in its own session (it
outlives the CLI; pid and ports are kept in the ``services`` table) and counts as deployed only
once it answers on its health port.

- **update** is a rolling restart on the same port: the new process opens the port beside the
  old one (``SO_REUSEPORT``), is health-checked on its private port, the record is switched, then
  the old process is stopped; the endpoint never changes and never points at nothing;
- **delete** is idempotent; :meth:`stop_all` (``manymodels down``) stops every process but keeps
  the records, :meth:`restart_stale` (``manymodels up``) starts the ones whose process is gone,
  :meth:`delete_all` (``manymodels deploy --target local --delete-all``) removes everything;
- there are no keys: services listen on loopback only (:meth:`get_keys` returns empty keys);
- a process is recorded before it can take traffic (``<generation>/process.json``: pid, ports,
  home, start time; see ``service_process.py``), and the processes of this home that no record
  points at (``strays``: left by a caller killed in the middle of an update) are stopped by the
  next update of their service, by ``manymodels up`` (:meth:`restart_stale`) and by ``manymodels
  down`` (:meth:`stop_all`). They are found by the home and service name in their environment,
  and told from a later process reusing the pid by their start time: never another home's.

Layout: ``<home>/services/<name>/<generation>/{models/, service.log, process.json}`` and ``<name>.lock``.
"""

from __future__ import annotations

import builtins  # builtins.list: in a class body after `def list`, a bare `list[...]` names the method
import contextlib
import fcntl
import json
import logging
import os
import shutil
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from shared.errors import InvalidValue, NotFound, Unavailable
from shared.paths import REPO_ROOT
from shared.processes import free_port
from shared.workspace.base import (
    ModelRecord,
    Service,
    ServiceConfig,
    ServiceKeys,
    ServiceKind,
    ServiceState,
    ServiceStore,
)
from shared.workspace.local import service_process as proc
from shared.workspace.local.db import Database, dumps, loads, utc_now

log = logging.getLogger(__name__)

_SECRET_WORDS = ("KEY", "SECRET", "TOKEN", "PASSWORD", "CONNECTION")
STOPPED = "stopped by 'manymodels down': 'manymodels up' starts it again"
RECORD_FILE = "process.json"


def _public_env(environment: dict[str, str]) -> dict[str, str]:
    """The environment worth keeping in the database: nothing that looks like a secret."""
    return {k: v for k, v in environment.items() if not any(w in k.upper() for w in _SECRET_WORDS)}


class LocalServiceStore(ServiceStore):
    def __init__(self, db: Database, *, home: Path) -> None:
        self.db = db
        self.home = Path(home).resolve()
        self.root = self.home / "services"

    # ------------------------------------------------------------------ reading

    def _row(self, name: str) -> dict[str, Any] | None:
        row = self.db.connection().execute("SELECT * FROM services WHERE name = ?", (name,)).fetchone()
        return dict(row) if row is not None else None

    def _service(self, row: dict[str, Any]) -> Service:
        info = proc.ProcessInfo.from_dict(loads(row["process"]))
        state, error = ServiceState(row["state"]), row["error"]
        if state == ServiceState.HEALTHY and (info is None or not self._alive(info)):
            state = ServiceState.UNHEALTHY
            error = f"process {info.pid if info else '?'} is not running: 'manymodels up' or a redeploy starts it"
        return Service(name=row["name"], kind=ServiceKind(row["kind"]), state=state, scoring_uri=row["scoring_uri"],
                       models=tuple(loads(row["models"], [])), updated=row["updated"], error=error)

    def list(self, *, kind: ServiceKind | None = None) -> list[Service]:
        if kind is not None and kind != ServiceKind.LOCAL:
            return []
        rows = self.db.connection().execute("SELECT * FROM services ORDER BY name").fetchall()
        return [self._service(dict(r)) for r in rows]

    def get(self, name: str) -> Service:
        row = self._row(name)
        if row is None:
            raise NotFound(f"local service {name!r} does not exist: deploy it with 'manymodels deploy'")
        return self._service(row)

    def get_keys(self, name: str) -> ServiceKeys:
        self.get(name)
        return ServiceKeys(primary="", secondary="")  # loopback only: no auth locally

    def process_info(self, name: str) -> proc.ProcessInfo | None:
        """The running process of ``name`` (pid, ports, model dir, log), for status and tests."""
        row = self._row(name)
        return proc.ProcessInfo.from_dict(loads(row["process"])) if row else None

    def _alive(self, info: proc.ProcessInfo) -> bool:
        return proc.is_alive(info.pid, ticks=info.start_ticks, home=self._home_of(info))

    def _stop(self, info: proc.ProcessInfo, *, wait: bool = True) -> None:
        proc.stop(info.pid, ticks=info.start_ticks, home=self._home_of(info), wait=wait)

    def _home_of(self, info: proc.ProcessInfo) -> Path | None:
        # A record written before processes carried their home (no start time either) is trusted
        # by pid and command line, as it was then.
        return self.home if info.start_ticks or info.home else None

    # ------------------------------------------------------------------ deploying

    def deploy(self, name: str, models: Sequence[ModelRecord], config: ServiceConfig, *,
               timeout: float = 600) -> Service:
        with self._locked(name):
            return self._roll(name, models, config, timeout)

    def update(self, name: str, models: Sequence[ModelRecord], config: ServiceConfig, *,
               timeout: float = 600) -> Service:
        with self._locked(name):
            return self._roll(name, models, config, timeout)

    def _roll(self, name: str, models: Sequence[ModelRecord], config: ServiceConfig, timeout: float) -> Service:
        """Start a process serving ``models``; once healthy it replaces the old one (if any)."""
        entry = self._entry_script(config.entry_script)
        # Not waited for: a stopping server closes its listening sockets at once.
        self._stop_strays(name, wait=False)
        row = self._row(name)
        old = proc.ProcessInfo.from_dict(loads(row["process"])) if row else None
        keep_port = old is not None and (self._alive(old) or proc.port_is_free(old.port))
        port = old.port if keep_port and old is not None else None
        generation = self.root / name / f"g{time.time_ns()}"
        model_dir = generation / "models"
        try:
            self._link_models(model_dir, models)
        except BaseException:
            self._remove_generation(generation)
            raise
        new = self._start(name, entry, model_dir, port, dict(config.environment), generation / "service.log",
                          timeout)
        self._save(name, new, [f"{m.name}:{m.version}" for m in models], config)
        if old is not None and old.pid != new.pid:
            # Graceful: its requests in flight finish. Not waited for: the record already points
            # at the new process, and models live in memory, so its folder can go now.
            self._stop(old, wait=False)
            self._remove_generation(Path(old.model_dir).parent)
        log.info("local service %s serves %d models on port %d (pid %d)", name, len(models), new.port, new.pid)
        return self.get(name)

    def _start(self, name: str, entry: Path, model_dir: Path, port: int | None, env: dict[str, str],
               log_file: Path, timeout: float) -> proc.ProcessInfo:
        """Start and health-check one process; ``port=None`` picks a free one. A port taken between
        choosing and binding it (other programs start servers too) is retried once with new ports."""
        for attempt in (0, 1):
            scoring_port = port if port is not None else free_port()
            health_port = free_port()
            started: dict[str, proc.ProcessInfo] = {}

            def record(pid: int, ticks: int, scoring_port: int = scoring_port, health_port: int = health_port,
                       started: dict[str, proc.ProcessInfo] = started) -> None:
                info = proc.ProcessInfo(pid=pid, port=scoring_port, health_port=health_port,
                                        entry_script=str(entry), app_root=str(entry.parent),
                                        model_dir=str(model_dir), log=str(log_file), started=time.time(),
                                        start_ticks=ticks, home=str(self.home))
                self._write_record(model_dir.parent, name, info)
                started["info"] = info

            process = proc.start(entry_script=entry, model_dir=model_dir, port=scoring_port,
                                 health_port=health_port, log_file=log_file, environment=env, home=self.home,
                                 name=name, record=record)
            try:
                proc.wait_healthy(process.pid, health_port, timeout=timeout, log_file=log_file)
            except Unavailable as e:
                proc.stop(process.pid)
                if attempt == 0 and "in use" in str(e).lower():
                    log.warning("local service %s: a port was taken while starting, retrying", name)
                    continue
                self._remove_generation(model_dir.parent, keep_log=True)
                raise
            except BaseException:
                proc.stop(process.pid)
                self._remove_generation(model_dir.parent, keep_log=True)
                raise
            return started["info"]
        raise AssertionError("unreachable")

    @staticmethod
    def _write_record(generation: Path, name: str, info: proc.ProcessInfo) -> None:
        """Write down a process before it is let go (atomically: a reader never sees half of it)."""
        generation.mkdir(parents=True, exist_ok=True)
        tmp = generation / f".{RECORD_FILE}.tmp"
        tmp.write_text(json.dumps({**info.to_dict(), "name": name}))
        tmp.replace(generation / RECORD_FILE)

    def _save(self, name: str, info: proc.ProcessInfo, models: builtins.list[str], config: ServiceConfig) -> None:
        process = {**info.to_dict(), "config": {
            "kind": str(config.kind), "entry_script": config.entry_script, "cpu_cores": config.cpu_cores,
            "memory_gb": config.memory_gb, "environment": _public_env(dict(config.environment)),
            "tags": dict(config.tags)}}
        with self.db.transaction() as tx:
            tx.execute(
                "INSERT INTO services (name, kind, state, scoring_uri, models, updated, error, process) "
                "VALUES (?, ?, ?, ?, ?, ?, NULL, ?) ON CONFLICT(name) DO UPDATE SET kind = excluded.kind, "
                "state = excluded.state, scoring_uri = excluded.scoring_uri, models = excluded.models, "
                "updated = excluded.updated, error = NULL, process = excluded.process",
                (name, str(ServiceKind.LOCAL), str(ServiceState.HEALTHY),
                 f"http://{proc.HOST}:{info.port}/score", dumps(models), utc_now(), dumps(process)))

    def _entry_script(self, entry_script: str) -> Path:
        path = Path(entry_script)
        if not path.is_absolute():
            path = REPO_ROOT / path
        if not path.is_file():
            raise InvalidValue(f"entry script {entry_script!r} does not exist (looked at {path}): check entryScript "
                               "in pipelines/configuration/local-deploy-config.yml")
        return path

    @staticmethod
    def _link_models(model_dir: Path, models: Sequence[ModelRecord]) -> None:
        """Azure ML's multi-model layout: ``<model_dir>/<name>/<version>/`` -> the registered artifacts."""
        model_dir.mkdir(parents=True, exist_ok=True)
        for m in models:
            source = Path(m.path)
            if not source.is_dir():
                raise InvalidValue(f"model {m.name}:{m.version} has no artifact directory at {m.path!r}")
            target = model_dir / m.name / str(m.version)
            target.parent.mkdir(exist_ok=True)
            os.symlink(source.resolve(), target, target_is_directory=True)

    def _remove_generation(self, generation: Path, *, keep_log: bool = False) -> None:
        if not generation.is_relative_to(self.root):
            return
        if keep_log:
            shutil.rmtree(generation / "models", ignore_errors=True)
        else:
            shutil.rmtree(generation, ignore_errors=True)

    # ------------------------------------------------------------------ stopping

    def delete(self, name: str) -> None:
        with self._locked(name):
            row = self._row(name)
            if row is not None:
                info = proc.ProcessInfo.from_dict(loads(row["process"]))
                if info is not None:
                    self._stop(info)
            self._stop_strays(name, wait=True, recorded=None)
            if row is not None:
                with self.db.transaction() as tx:
                    tx.execute("DELETE FROM services WHERE name = ?", (name,))
            shutil.rmtree(self.root / name, ignore_errors=True)

    def delete_all(self) -> builtins.list[str]:
        """Delete every local service (``manymodels deploy --target local --delete-all``), in parallel."""
        names = [s.name for s in self.list()]
        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(self.delete, self._names()))
        return names

    def stop_all(self) -> builtins.list[str]:
        """Stop every service process of this home, recorded or stray, keeping the records
        (``manymodels down``); returns the names of the recorded services stopped."""
        with ThreadPoolExecutor(max_workers=8) as pool:
            stopped = list(pool.map(self._stop_one, self._names()))
        return [name for name in stopped if name]

    def _names(self) -> builtins.list[str]:
        """The recorded services and those a process of this home serves (recorded or not)."""
        recorded = [s.name for s in self.list()]
        running = {n for n, _ in proc.running_in(self.home).values() if n and n not in recorded}
        return recorded + sorted(running)

    def _stop_one(self, name: str) -> str | None:
        with self._locked(name):
            row = self._row(name)
            info = proc.ProcessInfo.from_dict(loads(row["process"])) if row else None
            alive = info is not None and self._alive(info)
            if info is not None and alive:
                self._stop(info)
            self._stop_strays(name, wait=True, recorded=None)
            if info is None:
                return None
            with self.db.transaction() as tx:
                tx.execute("UPDATE services SET state = ?, error = ?, updated = ? WHERE name = ?",
                           (str(ServiceState.UNHEALTHY), STOPPED, utc_now(), name))
            return name if alive else None

    def restart_stale(self, *, timeout: float = 120) -> builtins.list[str]:
        """Start again every recorded service whose process is gone (after a reboot or ``down``).

        Each keeps its port when it is still free. Returns the names restarted; a service that
        fails to start is marked failed (with the reason) and the others still start.
        """
        for name in self._names():
            with self._locked(name):
                self._stop_strays(name, wait=True)
        restarted = []
        for service in self.list():
            if service.state == ServiceState.HEALTHY:
                continue
            with self._locked(service.name):
                try:
                    self._restart(service.name, timeout)
                    restarted.append(service.name)
                except (Unavailable, InvalidValue, OSError) as e:
                    log.error("local service %s did not restart: %s", service.name, e)
                    with self.db.transaction() as tx:
                        tx.execute("UPDATE services SET state = ?, error = ?, updated = ? WHERE name = ?",
                                   (str(ServiceState.FAILED), str(e)[:2000], utc_now(), service.name))
        return restarted

    def _restart(self, name: str, timeout: float) -> None:
        row = self._row(name)
        if row is None:
            return
        data = loads(row["process"])
        info = proc.ProcessInfo.from_dict(data)
        if info is None or not Path(info.model_dir).is_dir():
            raise Unavailable(f"local service {name!r} has no model directory to restart from: redeploy it")
        if self._alive(info):
            return
        cfg = data.get("config", {})
        port = info.port if proc.port_is_free(info.port) else None
        log_file = Path(info.model_dir).parent / "service.log"
        new = self._start(name, Path(info.entry_script), Path(info.model_dir), port,
                          dict(cfg.get("environment", {})), log_file, timeout)
        config = ServiceConfig(kind=ServiceKind.LOCAL, entry_script=cfg.get("entry_script", info.entry_script),
                               cpu_cores=float(cfg.get("cpu_cores", 1)), memory_gb=float(cfg.get("memory_gb", 1)),
                               auth_enabled=False, environment=dict(cfg.get("environment", {})),
                               tags=dict(cfg.get("tags", {})))
        self._save(name, new, list(loads(row["models"], [])), config)

    # ------------------------------------------------------------------ strays

    _KEEP = object()

    def _stop_strays(self, name: str, *, wait: bool, recorded: Any = _KEEP) -> builtins.list[int]:
        """Stop the processes of this home serving ``name`` that its record does not point at
        (``recorded=None``: all of them). The caller holds the lock of ``name``: nobody is starting
        one of its processes meanwhile. Returns the pids stopped."""
        tidy = recorded is LocalServiceStore._KEEP
        if recorded is LocalServiceStore._KEEP:
            row = self._row(name)
            recorded = proc.ProcessInfo.from_dict(loads(row["process"])) if row else None
        strays = {pid: ticks for pid, (_, ticks) in proc.running_in(self.home, name).items()}
        for info in self._records(name):  # where /proc tells no environments: the record files
            if info.start_ticks and proc.is_alive(info.pid, ticks=info.start_ticks, home=self.home):
                strays.setdefault(info.pid, info.start_ticks)
        if recorded is not None:
            strays = {pid: ticks for pid, ticks in strays.items()
                      if not (pid == recorded.pid and (not recorded.start_ticks or ticks == recorded.start_ticks))}
        for pid, ticks in strays.items():
            log.warning("local service %s: stopping process %d, which no record points at (left by an "
                        "interrupted start, or a replaced process still finishing its requests)", name, pid)
            proc.stop(pid, ticks=ticks, home=self.home, wait=wait)
        if tidy and recorded is not None:  # the folders of interrupted starts (the models are in memory)
            keep = Path(recorded.model_dir).parent
            for generation in (self.root / name).glob("g*"):
                if generation != keep and generation.is_dir():
                    self._remove_generation(generation)
        return sorted(strays)

    def _records(self, name: str) -> builtins.list[proc.ProcessInfo]:
        infos = []
        for path in (self.root / name).glob(f"*/{RECORD_FILE}"):
            with contextlib.suppress(OSError, ValueError):
                info = proc.ProcessInfo.from_dict(json.loads(path.read_text()))
                if info is not None:
                    infos.append(info)
        return infos

    # ------------------------------------------------------------------ locking

    @contextlib.contextmanager
    def _locked(self, name: str) -> Iterator[None]:
        """One writer per service across processes (F's queue workers, the CLI)."""
        if not name or "/" in name or name.startswith("."):
            raise InvalidValue(f"service name {name!r} is not allowed: expected letters, digits and dashes")
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / f"{name}.lock", "a+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def close(self) -> None:
        """Services keep running after the CLI exits: nothing to release."""
