"""`edgerec sweep` as a library call: a SweepConfig → every cell distilled, exported, validated
and benchmarked → the frontier and the smallest cell within budget.

    lock SWEEP_DIR → the teacher (given, or trained and recorded) → the grid
    → keep every unit whose record a rerun may trust (`edgerec.sweep.record`)
    → distillations and exports in parallel (`edgerec.sweep.executor`)
    → benchmarks one at a time, alone → the table → the selection → the report

A rerun in the same directory redoes only what is missing, changed, or (with retry_failed)
failed, so an interrupted sweep is continued by running it again.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from edgerec import atomic
from edgerec.config import to_dict
from edgerec.errors import ConfigError, SweepError
from edgerec.sweep import executor as ex
from edgerec.sweep import grid as g
from edgerec.sweep.config import SweepConfig
from edgerec.sweep.record import OK, Record, RecordStore, clear_unfinished, new_record
from edgerec.sweep.results import PENDING, bench_rows, reference_of, table
from edgerec.sweep.selection import Selection, select
from edgerec.train.rundir import Run, open_run

log = logging.getLogger(__name__)

CONFIG, LOCK = "config.json", ".lock"


@dataclass(frozen=True)
class Progress:
    """One step of a sweep, for a progress bar: a unit starting, finishing, or kept."""

    unit: str
    kind: str
    # "running", or how it ended: "ok", "failed", "skipped"; "kept" for a trusted record.
    status: str
    done: int
    total: int
    error: str | None = None


ProgressCallback = Callable[[Progress], None]


@dataclass
class SweepResult:
    out: Path
    config: SweepConfig
    grid: g.Grid
    teacher: Run
    rows: list[dict]
    selection: Selection | None
    # Why there is no selection: a relative budget whose teacher figure was not measured.
    selection_error: str | None
    # Units run by this call, and units whose records it kept.
    executed: list[str]
    kept: list[str]
    machine: dict | None = None
    command: str | None = None
    report: dict[str, Path] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        return all(row["status"] != PENDING for row in self.rows)

    @property
    def chosen(self) -> dict | None:
        return None if self.selection is None else self.selection.chosen


def run_sweep(
    config: SweepConfig,
    out: Path,
    *,
    executor: str = "local",
    workers: int | None = None,
    on_progress: ProgressCallback | None = None,
    retry_failed: bool = False,
    stop_after: int | None = None,
    command: str | None = None,
) -> SweepResult:
    """Run (or continue) the sweep `config` in `out` and write its report there.

    `stop_after` stops starting units once that many have run in this call, as an interruption
    would (those running finish and are recorded); a rerun continues from there.
    """
    from edgerec.sweep.report import write_report

    workers = workers or ex.default_workers()
    if workers < 1:
        raise ConfigError(f"--workers must be >= 1, got {workers}")
    if executor not in ex.EXECUTORS:
        raise ConfigError(f"executor '{executor}' is unknown: expected {', '.join(ex.EXECUTORS)}")
    out = Path(out)
    with _locked(out):
        store = RecordStore(out)
        teacher = _teacher(config, out, store)
        grid = g.build_grid(config, teacher, out)
        atomic.write_json(out / CONFIG, to_dict(config))
        tracker = _Tracker(grid, store, on_progress, retry_failed, stop_after)

        parallel = [u for u in tracker.todo if u.kind != "bench"]
        if parallel:  # a finished sweep starts no workers (nor Ray)
            with ex.make_pool(executor, workers) as pool:
                tracker.run(parallel, pool)
        # After every distillation and export, one at a time: no unit of this sweep competes
        # with a measurement for the cores.
        tracker.run([u for u in tracker.todo if u.kind == "bench"], ex.InlinePool())

        result = _result(config, out, grid, teacher, store, tracker, command)
        result.report = write_report(result, bench_rows(grid, tracker.records, _device(config)))
    log.info("sweep %s: %d units run, %d kept", out, len(tracker.executed), len(tracker.kept))
    return result


class _Tracker:
    """Which units are settled, what ran, and the records; reports progress as units end."""

    def __init__(self, grid, store, on_progress, retry_failed: bool, stop_after: int | None):
        self.store, self.on_progress, self.stop_after = store, on_progress, stop_after
        self.total = len(grid.units)
        self.records: dict[str, Record | None] = {}
        self.settled: dict[str, bool] = {}
        self.executed: list[str] = []
        self.kept: list[str] = []
        self.todo = []
        for unit in grid.units.values():  # upstream first: a redone unit's dependents redo
            record = store.reusable(unit, retry_failed=retry_failed)
            if record is not None and (unit.parent is None or unit.parent in self.settled):
                self.records[unit.id] = record
                self.settled[unit.id] = record.ok
                self.kept.append(unit.id)
                self._report(unit, "kept")
            else:
                self.records[unit.id] = None
                self.todo.append(unit)

    def run(self, units: list, pool) -> None:
        ex.run_units(
            units,
            pool,
            settled=self.settled,
            on_start=lambda unit: self._report(unit, "running"),
            on_done=self._done,
            should_stop=self._should_stop,
        )

    def _done(self, unit, outcome: dict) -> None:
        upstream = self.store.digest(unit.parent)
        fields = {key: outcome[key] for key in ("result", "error")}
        record = new_record(unit, outcome["status"], upstream, outcome["seconds"], **fields)
        self.store.write(record)
        self.records[unit.id] = record
        self.executed.append(unit.id)
        error = outcome["error"]
        self._report(unit, outcome["status"], error and f"{error['type']}: {error['message']}")

    def _should_stop(self) -> bool:
        return self.stop_after is not None and len(self.executed) >= self.stop_after

    def _report(self, unit, status: str, error: str | None = None) -> None:
        if self.on_progress is not None:
            done = len(self.executed) + len(self.kept)
            self.on_progress(Progress(unit.id, unit.kind, status, done, self.total, error))


def _teacher(config: SweepConfig, out: Path, store: RecordStore) -> Run:
    """The teacher run: the one given, or the one trained here (once: its record is kept)."""
    from edgerec.train.job import train_run

    if config.teacher.run is not None:
        return open_run(Path(config.teacher.run))
    unit = g.teacher_unit(config.teacher.train, out)
    if store.reusable(unit) is None:
        clear_unfinished(unit.out)
        log.info("training the teacher into %s", unit.out)
        metrics = train_run(unit.config, Path(unit.out))
        result = {"run": unit.out, "test": metrics["test"], "params": metrics["params"]}
        store.write(new_record(unit, OK, None, metrics["seconds"], result=result))
    return open_run(Path(unit.out))


def _result(config, out, grid, teacher, store, tracker, command) -> SweepResult:
    k = config.bench.k
    rows = table(grid, tracker.records, teacher, k)
    selection, selection_error = None, None
    try:
        reference = reference_of(rows, teacher, _device(config), k)
        selection = select(rows, config.budget, reference, k)
    except ConfigError as exc:
        selection_error = str(exc)
    machine = next(
        (r.result["machine"] for r in tracker.records.values() if r and r.ok and r.kind == "bench"),
        None,
    )
    return SweepResult(
        out=out,
        config=config,
        grid=grid,
        teacher=teacher,
        rows=rows,
        selection=selection,
        selection_error=selection_error,
        executed=tracker.executed,
        kept=tracker.kept,
        machine=machine,
        command=command,
    )


def _device(config: SweepConfig) -> str:
    return config.budget.device


@contextlib.contextmanager
def _locked(out: Path) -> Iterator[None]:
    """Hold SWEEP_DIR/.lock: two sweeps writing one directory would redo each other's units.

    The lock is the kernel's (flock), so it ends with its process, however that ends.
    """
    out.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # Limitation: no lock off POSIX, because flock is POSIX only
        yield
        return
    with open(out / LOCK, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "?"
            raise SweepError(
                f"{out} is in use by another sweep (pid {holder}): wait for it or choose "
                "another --out"
            ) from None
        handle.truncate(0)
        handle.write(str(os.getpid()))
        handle.flush()
        yield
