"""Where a sweep's units run.

Distillations and exports are independent CPU-bound jobs: they run in worker processes on this
machine (`concurrent.futures.ProcessPoolExecutor`, the default) or as Ray tasks (`--executor
ray`, the optional extra `ray`). Benchmarks run afterwards in this process, one at a time and
alone, because a latency measured beside another job measures the other job too. All three go
through `run_units`, which starts a unit once the unit it needs has succeeded; the pools only
say how a unit is run.

`execute` is what every pool runs: one unit, from scratch, through the same library calls as
the single commands (`distill_run`, `export_run`, `run_bench`). A unit's own failure comes back
as its outcome, never as an exception, so one failing cell does not stop the sweep.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable, Iterable
from concurrent import futures
from pathlib import Path

from edgerec.errors import BenchError, SweepError, TargetError
from edgerec.sweep.record import FAILED, OK, SKIPPED, clear_unfinished, error_of

log = logging.getLogger(__name__)

EXECUTORS = ("local", "ray")
RAY_INSTALL = "pip install 'edgerec[ray]'"


class Skipped(Exception):
    """A unit that cannot run here (a device that is not available): recorded as skipped."""


def default_workers() -> int:
    return max(1, min(2, os.cpu_count() or 1))


def execute(unit) -> dict:
    """Run one unit from scratch: {"status", "result", "error", "seconds"}."""
    start = time.perf_counter()
    result, error = None, None
    try:
        clear_unfinished(unit.out)
        result = _RUNNERS[unit.kind](unit)
        status = OK
    except Skipped as exc:
        status, error = SKIPPED, {"type": "Skipped", "message": str(exc)}
    except Exception as exc:  # any failure of one cell is recorded; the sweep goes on
        status, error = FAILED, error_of(exc)
        log.warning("%s failed: %s: %s", unit.id, error["type"], error["message"])
    return {
        "status": status,
        "result": result,
        "error": error,
        "seconds": time.perf_counter() - start,
    }


def run_units(
    units: Iterable,
    pool,
    *,
    settled: dict[str, bool],
    on_start: Callable[[object], None],
    on_done: Callable[[object, dict], None],
    should_stop: Callable[[], bool] = lambda: False,
) -> None:
    """Run each unit on `pool` once the unit it needs has succeeded.

    `settled` maps the ids of units already done (before or during this call) to whether they
    succeeded; a unit whose needed unit failed, or will not run, is left out. At most
    `pool.capacity` units are given to the pool at once, units whose needed unit is done
    first: an export starts as soon as its distillation ends, so the finished cells grow
    steadily and an interruption loses the least. `on_done(unit, outcome)` is called here, in
    this process, as each unit finishes. Once `should_stop()` is true no unit is started; those
    running finish and are reported.
    """
    waiting = list(units)
    running: dict = {}
    while waiting or running:
        if should_stop():
            waiting.clear()
        in_flight = {u.id for u in waiting} | {u.id for u in running.values()}
        states = {u.id: _state(u, settled, in_flight) for u in waiting}
        waiting = [u for u in waiting if states[u.id] is not False]
        ready = sorted((u for u in waiting if states[u.id]), key=lambda u: u.parent is None)
        for unit in ready[: max(pool.capacity - len(running), 0)]:
            waiting.remove(unit)
            on_start(unit)
            running[pool.submit(unit)] = unit
        if not running:
            break
        for handle in pool.wait(list(running)):
            unit = running.pop(handle)
            outcome = pool.outcome(handle)
            settled[unit.id] = outcome["status"] == OK
            on_done(unit, outcome)


def _state(unit, settled: dict[str, bool], in_flight: set[str]) -> bool | None:
    """True: can start; False: never will (what it needs failed); None: not yet."""
    if unit.parent is None:
        return True
    if unit.parent in settled:
        return settled[unit.parent]
    return None if unit.parent in in_flight else False


def make_pool(executor: str, workers: int):
    if executor == "local":
        return LocalPool(workers)
    if executor == "ray":
        return RayPool(workers)
    raise SweepError(f"executor '{executor}' is unknown: expected one of {', '.join(EXECUTORS)}")


class InlinePool:
    """Runs each unit in this process as it is submitted: the benchmarks' pool."""

    capacity = 1

    def __enter__(self) -> InlinePool:
        return self

    def __exit__(self, *exc) -> None:
        pass

    def submit(self, unit) -> _Done:
        return _Done(execute(unit))

    def wait(self, handles: list) -> list:
        return handles

    def outcome(self, handle: _Done) -> dict:
        return handle.outcome


class _Done:
    def __init__(self, outcome: dict):
        self.outcome = outcome


class LocalPool:
    """Worker processes on this machine."""

    def __init__(self, workers: int):
        import multiprocessing

        self.capacity = workers

        # spawn, not fork: this process may hold torch's and onnxruntime's thread pools, which
        # a forked child inherits in a broken state; a fresh interpreter imports them anew.
        self._pool = futures.ProcessPoolExecutor(
            max_workers=workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_die_with_parent,
            initargs=(os.getpid(),),
        )

    def __enter__(self) -> LocalPool:
        return self

    def __exit__(self, *exc) -> None:
        # On an error or an interrupt nothing queued should start; running units finish.
        self._pool.shutdown(wait=True, cancel_futures=exc[0] is not None)

    def submit(self, unit) -> futures.Future:
        return self._pool.submit(execute, unit)

    def wait(self, handles: list) -> list:
        done, _ = futures.wait(handles, return_when=futures.FIRST_COMPLETED)
        return list(done)

    def outcome(self, handle: futures.Future) -> dict:
        try:
            return handle.result()
        except futures.process.BrokenProcessPool as exc:
            # Not the cell's fault (the OOM killer, a signal): stop, keep what is recorded.
            raise SweepError(
                f"a worker process died ({exc}): rerun the sweep to continue, finished units "
                "are kept; fewer --workers need less memory"
            ) from None


class RayPool:
    """Ray tasks: on a local Ray started here, or on the cluster this process is connected to."""

    def __init__(self, workers: int):
        try:
            import ray
        except ImportError:
            raise SweepError(
                f"--executor ray needs Ray, which is not installed: {RAY_INSTALL}"
            ) from None
        self._ray = ray
        self.capacity = workers
        self._owner = not ray.is_initialized()
        if self._owner:
            ray.init(num_cpus=workers, include_dashboard=False, logging_level=logging.WARNING)
        # One CPU per task: Ray runs as many at once as the cluster has CPUs (here: workers).
        self._task = ray.remote(num_cpus=1, max_retries=0)(execute)

    def __enter__(self) -> RayPool:
        return self

    def __exit__(self, *exc) -> None:
        if self._owner:
            self._ray.shutdown()

    def submit(self, unit):
        return self._task.remote(unit)

    def wait(self, handles: list) -> list:
        done, _ = self._ray.wait(handles, num_returns=1)
        return done

    def outcome(self, handle) -> dict:
        try:
            return self._ray.get(handle)
        except self._ray.exceptions.RayError as exc:
            first = (str(exc).strip().splitlines() or [""])[0]
            raise SweepError(
                f"a Ray task died ({type(exc).__name__}: {first}): rerun the sweep to continue"
            ) from None


def _die_with_parent(parent: int) -> None:
    """Worker initializer: end this worker when the sweep process ends, however it ends.

    A worker that outlived a killed sweep would go on writing into a unit that the rerun redoes
    from scratch. On Linux the kernel sends it SIGKILL when its parent dies (PR_SET_PDEATHSIG).
    """
    if not sys.platform.startswith("linux"):
        # Limitation: elsewhere a killed sweep's workers finish their unit before they exit,
        # because only Linux has a parent-death signal; wait for them before rerunning.
        return
    import ctypes
    import signal

    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before the signal was asked for
        os._exit(1)


def _distill(unit) -> dict:
    from edgerec.distill.job import distill_run

    metrics = distill_run(Path(unit.teacher), unit.config, Path(unit.out))
    keep = ("valid", "test", "epochs", "best_epoch", "seconds", "params", "bytes", "compression")
    return {"run": unit.out, **{key: metrics.get(key) for key in keep}}


def _export(unit) -> dict:
    from edgerec.export.job import export_run

    manifest = export_run(Path(unit.run), Path(unit.out), unit.config, thresholds=unit.thresholds)
    checks = manifest["validation"].get("checks", [])
    return {
        "bundle": unit.out,
        "bytes": manifest["file"]["bytes"],
        "sha256": manifest["file"]["sha256"],
        "params": manifest["model"]["params"],
        "precision": unit.precision,
        "validation": {
            "passed": manifest["validation"]["passed"],
            "checks": [{k: c[k] for k in ("name", "passed", "value", "threshold")} for c in checks],
        },
    }


def _bench(unit) -> dict:
    from edgerec.bench.config import BenchConfig, Device
    from edgerec.bench.run import run_bench

    s = unit.settings
    config = BenchConfig(
        exports=(unit.bundle,),
        device=unit.device,
        batches=s.batches,
        threads=s.threads,
        warmup=s.warmup,
        runs=s.runs,
        k=s.k,
        memory=s.memory,
        seed=s.seed,
    )
    try:
        result = run_bench(config)
    except (BenchError, TargetError) as exc:
        if unit.device == Device.cpu.value:
            raise
        raise Skipped(f"{unit.device} is not available: {exc}") from None

    rows = [row for row in result.rows if row["model"] != "floor"]
    if not rows:
        raise Skipped(f"the bench measured nothing on {unit.device}")
    for row in rows:
        row["model"] = unit.parent  # the export's id: unique, where bundle names repeat
    return {"rows": rows, "runtime": result.runtime, "machine": result.machine}


_RUNNERS = {"distill": _distill, "export": _export, "bench": _bench}
