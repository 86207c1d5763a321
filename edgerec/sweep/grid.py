"""The cells of a sweep and the units of work they share.

A cell is one deployable model measured on one device: (size, method, seed) × precision ×
device for the students, precision × device for the teacher. Its id reads as its path:

    d16-htd-s0/int8-arm64/cpu      student dim 16, HTD, seed 0, int8 for arm64, benched on cpu
    teacher/fp32/cpu               the teacher's own fp32 bundle, the reference of relative budgets

Cells share units: one distillation (`d16-htd-s0`) feeds every precision, one export
(`d16-htd-s0/int8-arm64`) every device. Each unit has a hash of everything that decides its
result, chained through the unit it needs, so that a changed setting invalidates exactly the
units downstream of it (`edgerec.sweep.record`).

    SWEEP_DIR/students/d16-htd-s0/            the student's run directory
    SWEEP_DIR/bundles/d16-htd-s0/int8-arm64/  its bundle; bundles/teacher/fp32/ the teacher's
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from edgerec.config import to_dict
from edgerec.errors import ConfigError
from edgerec.export.config import ExportConfig
from edgerec.export.validate import Thresholds
from edgerec.sweep.config import BenchSettings, SweepConfig
from edgerec.train.rundir import CONFIG, MODEL, Run, RunConfig

# Part of every hash: a change to what a unit records invalidates every record.
RECORD_VERSION = 1
TEACHER = "teacher"
STUDENTS, BUNDLES = "students", "bundles"


@dataclass(frozen=True)
class Size:
    dim: int
    # NCF: the MLP depth; None keeps the teacher's (and stays out of the id).
    layers: int | None = None
    # The share of the teacher's parameters it was resolved from, if it was given as one.
    fraction: float | None = None

    @property
    def id(self) -> str:
        return f"d{self.dim}" + ("" if self.layers is None else f"-l{self.layers}")


@dataclass(frozen=True)
class TeacherUnit:
    """Training the teacher into SWEEP_DIR/teacher, when the sweep is not given a run."""

    kind: ClassVar[str] = TEACHER
    parent: ClassVar[None] = None
    id: ClassVar[str] = TEACHER
    hash: str
    out: str
    config: RunConfig


@dataclass(frozen=True)
class DistillUnit:
    kind: ClassVar[str] = "distill"
    parent: ClassVar[None] = None
    id: str
    hash: str
    out: str
    teacher: str
    config: RunConfig


@dataclass(frozen=True)
class ExportUnit:
    kind: ClassVar[str] = "export"
    id: str
    hash: str
    out: str
    # The distillation it exports; None for the teacher's, which exists before the grid.
    parent: str | None
    run: str
    precision: str
    config: ExportConfig
    thresholds: Thresholds


@dataclass(frozen=True)
class BenchUnit:
    kind: ClassVar[str] = "bench"
    out: ClassVar[None] = None
    id: str
    hash: str
    parent: str
    bundle: str
    device: str
    settings: BenchSettings


Unit = DistillUnit | ExportUnit | BenchUnit


@dataclass(frozen=True)
class Cell:
    id: str
    role: str  # "teacher" or "student"
    size: str | None
    dim: int
    layers: int | None
    method: str | None
    seed: int | None
    precision: str
    device: str
    # The units it needs, upstream first: (distill,) export, bench.
    units: tuple[str, ...]


@dataclass
class Grid:
    teacher: Path
    teacher_identity: str
    sizes: list[Size]
    cells: list[Cell]
    # Every unit by id, each after the unit it needs.
    units: dict[str, Unit]

    def of_kind(self, kind: str) -> list[Unit]:
        return [u for u in self.units.values() if u.kind == kind]


def build_grid(config: SweepConfig, teacher: Run, out: Path) -> Grid:
    """Every cell and unit of `config` for this teacher, writing under `out`."""
    out = Path(out).resolve()
    identity = teacher_identity(teacher.path)
    sizes = resolve_sizes(config, teacher)
    units: dict[str, Unit] = {}
    cells: list[Cell] = []

    model = teacher.config.model
    about = {
        "role": TEACHER,
        "size": None,
        "dim": model.dim,
        "layers": model.layers if model.name == "ncf" else None,
        "method": None,
        "seed": None,
    }
    for precision in config.export.precisions:
        export = _export_unit(config, out, TEACHER, teacher.path, precision, None, identity)
        cells += _bench_cells(config, export, units, (), about)

    students = config.students
    for size, method, seed in itertools.product(sizes, students.methods, students.seeds):
        distill = _distill_unit(config, teacher, out, size, method, seed, identity)
        units[distill.id] = distill
        about = {
            "role": "student",
            "size": size.id,
            "dim": size.dim,
            "layers": size.layers,
            "method": method,
            "seed": seed,
        }
        for precision in config.export.precisions:
            export = _export_unit(
                config, out, distill.id, Path(distill.out), precision, distill, identity
            )
            cells += _bench_cells(config, export, units, (distill.id,), about)
    return Grid(teacher.path, identity, sizes, cells, _ordered(units))


def _bench_cells(config, export: ExportUnit, units: dict, upstream: tuple, about: dict):
    """The export's cells, one per device, each with its benchmark unit."""
    units[export.id] = export
    cells = []
    for device in config.bench.devices:
        bench = _bench_unit(config, export, device)
        units[bench.id] = bench
        units_needed = (*upstream, export.id, bench.id)
        cells.append(
            Cell(
                id=bench.id, precision=export.precision, device=device, units=units_needed, **about
            )
        )
    return cells


def resolve_sizes(config: SweepConfig, teacher: Run) -> list[Size]:
    """The students' sizes: the dims given, then each fraction's dim; repeats dropped."""
    students = config.students
    model = teacher.config.model
    if students.layers and model.name != "ncf":
        raise ConfigError(
            f"students.layers applies to NCF students, and the teacher is {model.name}: drop it"
        )
    depths = students.layers or (None,)
    sizes = [Size(dim, depth) for dim in students.dims for depth in depths]
    for fraction in students.fractions:
        for depth in depths:
            sizes.append(Size(_dim_for(fraction, teacher, depth), depth, fraction))
    unique: dict[str, Size] = {}
    for size in sizes:
        unique.setdefault(size.id, size)
    return list(unique.values())


def teacher_unit(config: RunConfig, out: Path) -> TeacherUnit:
    payload = {"kind": TEACHER, "config": to_dict(config)}
    return TeacherUnit(config_hash(payload), str(Path(out).resolve() / TEACHER), config)


def teacher_identity(path: Path) -> str:
    """A digest of the teacher's config and weights: retraining it invalidates every unit."""
    digest = hashlib.sha256()
    for name in (CONFIG, MODEL):
        digest.update((Path(path) / name).read_bytes())
    return digest.hexdigest()[:16]


def config_hash(payload: dict) -> str:
    text = json.dumps({"version": RECORD_VERSION, **payload}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _distill_unit(config, teacher: Run, out: Path, size: Size, method, seed, identity):
    from edgerec.distill.job import student_config

    model = {"dim": size.dim} | ({} if size.layers is None else {"layers": size.layers})
    overrides = {
        "model": model,
        "distill": {**config.students.distill, "method": method},
        "train": {**config.students.train, "seed": seed},
    }
    run_config = student_config(teacher, overrides)
    unit_id = f"{size.id}-{method}-s{seed}"
    # The teacher enters through its identity, not its path: a moved teacher is the same one.
    hashed = to_dict(dataclasses.replace(run_config, teacher=None))
    return DistillUnit(
        id=unit_id,
        hash=config_hash({"kind": "distill", "teacher": identity, "config": hashed}),
        out=str(out / STUDENTS / unit_id),
        teacher=str(teacher.path.resolve()),
        config=run_config,
    )


def _export_unit(config, out: Path, prefix, run_dir: Path, precision, parent, identity):
    export_config = config.export.export_config(precision)
    thresholds = config.export.validation_thresholds()
    upstream = identity if parent is None else parent.hash
    payload = {
        "kind": "export",
        "parent": upstream,
        "config": to_dict(export_config),
        "thresholds": dataclasses.asdict(thresholds),
    }
    return ExportUnit(
        id=f"{prefix}/{precision}",
        hash=config_hash(payload),
        out=str(out / BUNDLES / prefix / precision),
        parent=None if parent is None else parent.id,
        run=str(run_dir),
        precision=precision,
        config=export_config,
        thresholds=thresholds,
    )


def _bench_unit(config: SweepConfig, export: ExportUnit, device: str) -> BenchUnit:
    settings = {k: v for k, v in to_dict(config.bench).items() if k != "devices"}
    payload = {"kind": "bench", "parent": export.hash, "device": device, "settings": settings}
    return BenchUnit(
        id=f"{export.id}/{device}",
        hash=config_hash(payload),
        parent=export.id,
        bundle=export.out,
        device=device,
        settings=config.bench,
    )


def _dim_for(fraction: float, teacher: Run, layers: int | None) -> int:
    """The embedding size whose student's parameter count comes closest to the share."""
    from edgerec.models.registry import build_model, with_size

    n_users, n_items = teacher.dataset["users"], teacher.dataset["items"]
    target = fraction * teacher.metrics["params"]

    def params(dim: int) -> int:
        config = with_size(teacher.config.model, dim=dim, layers=layers)
        return build_model(config, n_users, n_items).n_params()

    # Parameters grow with the dim: bisect for the first dim at or above the target, then
    # take whichever neighbour is closer. Few models are built, even for a large catalogue.
    low, high = 1, max(2, 2 * teacher.config.model.dim)
    while params(high) < target:
        low, high = high, 2 * high
    while low < high:
        mid = (low + high) // 2
        low, high = (mid + 1, high) if params(mid) < target else (low, mid)
    if low > 1 and target - params(low - 1) <= params(low) - target:
        return low - 1
    return low


def _ordered(units: dict[str, Unit]) -> dict[str, Unit]:
    """Distillations, then exports, then benchmarks: every unit after the one it needs."""
    rank = {"distill": 0, "export": 1, "bench": 2}
    return dict(sorted(units.items(), key=lambda item: rank[item[1].kind]))
