"""What a sweep explores: `SweepConfig`, read from `configs/sweeps/NAME.toml`, saved resolved as
SWEEP_DIR/config.json beside the results.

    name = "quick"
    [teacher]            run = "RUN_DIR" (used as it is), or preset = "configs/X.toml" and/or
    [teacher.config]     RunConfig tables merged over the preset: the teacher trained first
    [students]           dims = [4, 8] and/or fractions = [0.1] (of the teacher's parameters),
                         layers = [2] (NCF), methods = ["none", "htd"], seeds = [0]
    [students.train]     overrides of the teacher's train table: epochs, lr, threads, ...
    [students.distill]   overrides of the distill table: lambda_, groups, ... (not method)
    [export]             precisions = ["fp32", "int8-x86-avx2", "int8-arm64-static"], k, ...
    [export.thresholds]  overrides of the validation thresholds (edgerec.export.validate)
    [bench]              devices = ["cpu"], batches, threads, warmup, runs, k, memory
    [budget]             min_recall = "0.9x", max_latency_ms = 2.0, max_bytes = "0.1x", device

A precision is `fp32` or `int8-PRESET[-MODE]`: PRESET one of edgerec.export.presets, MODE one
of dynamic (the default), static and weights-only. Relative paths in the file are relative to
where the command runs; the saved config holds absolute ones.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from edgerec.bench.config import Device
from edgerec.config import from_dict, load_toml, merge, to_dict
from edgerec.distill.config import DistillConfig
from edgerec.distill.registry import Method
from edgerec.errors import ConfigError
from edgerec.export.config import MODES, ExportConfig, QuantConfig
from edgerec.export.presets import PRESETS
from edgerec.export.validate import Thresholds
from edgerec.sweep.selection import Bound, Budget
from edgerec.train.config import TrainConfig
from edgerec.train.rundir import RunConfig

FP32 = "fp32"
_DATA_PATHS = ("source", "valid_path", "test_path")


@dataclass(frozen=True)
class TeacherConfig:
    # A finished run directory to distill from, used as it is.
    run: str | None = None
    # Or the teacher to train first, into SWEEP_DIR/teacher.
    train: RunConfig | None = None

    def __post_init__(self) -> None:
        if (self.run is None) == (self.train is None):
            raise ConfigError(
                "teacher: give either run = RUN_DIR (an existing run) or a preset and/or "
                "config tables to train one, not both and not neither"
            )


@dataclass(frozen=True)
class StudentsConfig:
    dims: tuple[int, ...] = ()
    # Sizes as shares of the teacher's parameters, each resolved to the embedding size whose
    # student comes closest (`edgerec.sweep.grid.resolve_sizes`).
    fractions: tuple[float, ...] = ()
    # NCF only: MLP depths to cross with the sizes; empty keeps the teacher's depth.
    layers: tuple[int, ...] = ()
    methods: tuple[str, ...] = (Method.none.value, Method.htd.value)
    seeds: tuple[int, ...] = (0,)
    # Plain tables merged over the teacher's `train` and the default `distill` tables, so that
    # only the keys given override (hash=False: a dict cannot be hashed, and need not be).
    # Give train.threads = 1: each worker trains one student, and torch's threads in one
    # worker would compete with the other workers' for the same cores.
    train: dict = field(default_factory=dict, hash=False)
    distill: dict = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        if not self.dims and not self.fractions:
            raise ConfigError("students: give dims = [...] and/or fractions = [...]")
        _check_ints("students.dims", self.dims, low=1)
        _check_ints("students.layers", self.layers, low=1)
        _check_ints("students.seeds", self.seeds, low=0, empty=False)
        for f in self.fractions:
            if isinstance(f, bool) or not isinstance(f, int | float) or not 0 < f <= 4:
                raise ConfigError(f"students.fractions: {f!r} is not a share in (0, 4]")
        known = [m.value for m in Method]
        unknown = [m for m in self.methods if m not in known]
        if not self.methods or unknown:
            raise ConfigError(
                f"students.methods {list(self.methods)}: expected some of {', '.join(known)}"
            )
        _check_unique("students.methods", self.methods)
        if "method" in self.distill:
            raise ConfigError("students.distill.method: list methods in students.methods instead")
        # Built once here so that a bad key or value fails now, not in every cell.
        from_dict(TrainConfig, merge(to_dict(TrainConfig()), self.train), where="students.train")
        from_dict(DistillConfig, self.distill, where="students.distill")


@dataclass(frozen=True)
class ExportSettings:
    precisions: tuple[str, ...] = (FP32,)
    # Bundles return every item's score by default, for two reasons. Their bytes are then the
    # model's alone: exclude_seen puts an n_users x n_items bitmask in the graph (199 KB on
    # ML-100K, more than a dim-16 student's tables), which would swamp every small cell. And
    # every device scores Recall@K from the graph's own output, where a top-k graph without
    # exclude_seen leaves heavy users' top k unknown there (the host alone recovers it from
    # the scores before the TopK; edgerec.runtime.bench.bundle_accuracy).
    # Limitation: the latency then leaves out the top-k selection a deployed graph makes, one
    # TopK over the catalogue, the same for every cell.
    scores_only: bool = True
    exclude_seen: bool = False
    # The top k a graph returns when not scores_only.
    k: int = 50
    per_channel: bool = False
    validate: bool = True
    thresholds: dict = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        if not self.precisions:
            raise ConfigError("export.precisions is empty: expected e.g. ['fp32', 'int8-arm64']")
        _check_unique("export.precisions", self.precisions)
        for name in self.precisions:
            self.export_config(name)  # raises on an unknown precision or option
        self.validation_thresholds()

    def export_config(self, precision: str) -> ExportConfig:
        return ExportConfig(
            k=self.k,
            scores_only=self.scores_only,
            exclude_seen=self.exclude_seen,
            quant=parse_precision(precision, per_channel=self.per_channel),
            validate=self.validate,
        )

    def validation_thresholds(self) -> Thresholds:
        return from_dict(
            Thresholds,
            merge(dataclasses.asdict(Thresholds()), self.thresholds),
            where="export.thresholds",
        )


@dataclass(frozen=True)
class BenchSettings:
    devices: tuple[str, ...] = (Device.cpu.value,)
    # Must hold 1: latency budgets are per call at batch 1.
    batches: tuple[int, ...] = (1,)
    threads: tuple[int, ...] = (1,)
    warmup: int = 10
    runs: int = 100
    # The cut-off of Recall@K and NDCG@K, in the table and in the budget.
    k: int = 20
    memory: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        known = [d.value for d in Device]
        unknown = [d for d in self.devices if d not in known]
        if not self.devices or unknown:
            raise ConfigError(f"bench.devices {list(self.devices)}: expected some of {known}")
        _check_unique("bench.devices", self.devices)
        if 1 not in self.batches:
            raise ConfigError(
                f"bench.batches {list(self.batches)} lacks 1: latency budgets are per call at "
                "batch 1, add it"
            )
        from edgerec.runtime.bench import Settings

        Settings(
            batches=self.batches,
            threads=self.threads,
            warmup=self.warmup,
            runs=self.runs,
            k=self.k,
            memory=self.memory,
            seed=self.seed,
        )


@dataclass(frozen=True)
class SweepConfig:
    teacher: TeacherConfig
    students: StudentsConfig
    name: str = "sweep"
    export: ExportSettings = field(default_factory=ExportSettings)
    bench: BenchSettings = field(default_factory=BenchSettings)
    budget: Budget = field(default_factory=Budget)

    def __post_init__(self) -> None:
        if self.budget.device not in self.bench.devices:
            raise ConfigError(
                f"budget device {self.budget.device} is not benchmarked by this sweep "
                f"(bench.devices = {list(self.bench.devices)}): add it or choose another"
            )
        if not self.export.scores_only and self.bench.k > self.export.k:
            raise ConfigError(
                f"bench.k = {self.bench.k} exceeds export.k = {self.export.k}: a bundle returns "
                "its top export.k items, so Recall@K needs K <= export.k"
            )


def parse_precision(name: str, *, per_channel: bool = False) -> QuantConfig | None:
    """`fp32` → None; `int8-PRESET[-MODE]` → its QuantConfig (dynamic unless MODE says)."""
    if name == FP32:
        return None
    rest = name.removeprefix("int8-")
    mode = next((m for m in MODES if rest.endswith(f"-{m}")), "dynamic")
    preset = rest.removesuffix(f"-{mode}")
    if not name.startswith("int8-") or preset not in PRESETS:
        raise ConfigError(
            f"precision '{name}' is unknown: expected fp32 or int8-PRESET[-MODE] with PRESET "
            f"one of {', '.join(PRESETS)} and MODE one of {', '.join(MODES)}"
        )
    if name != precision_name(preset, mode):
        raise ConfigError(f"precision '{name}': write it {precision_name(preset, mode)}")
    return QuantConfig(mode=mode, preset=preset, per_channel=per_channel)


def precision_name(preset: str, mode: str) -> str:
    """The canonical name: dynamic is the default and is not written."""
    return f"int8-{preset}" + ("" if mode == "dynamic" else f"-{mode}")


def load_sweep(path: Path) -> SweepConfig:
    """A sweep preset (`configs/sweeps/NAME`, the .toml optional) as a validated SweepConfig."""
    payload = load_toml(Path(path))
    payload.setdefault("name", Path(path).with_suffix("").name)
    return from_payload(payload, where=str(path))


def from_payload(payload: dict, *, where: str = "sweep config") -> SweepConfig:
    """Build a SweepConfig from a TOML table (teacher presets, budget texts) or a saved one."""
    payload = dict(payload)
    payload["teacher"] = _teacher_table(payload.get("teacher", {}), where)
    if "budget" in payload:
        payload["budget"] = _budget_table(payload["budget"])
    return from_dict(SweepConfig, payload, where=where)


def teacher_run_config(table: dict, *, where: str = "teacher") -> RunConfig:
    """A teacher's RunConfig from `preset` (a RunConfig TOML file) and `config` tables."""
    unknown = sorted(set(table) - {"preset", "config"})
    if unknown:
        raise ConfigError(f"{where}: unknown setting(s) {', '.join(unknown)}")
    base = load_toml(Path(table["preset"])) if table.get("preset") else {}
    merged = merge(base, table.get("config", {}))
    data = merged.setdefault("data", {})
    # As `edgerec train --config` does (edgerec.cli.options.resolve_config): a preset's data
    # paths are relative to where the command runs, the saved config's are absolute.
    for key in _DATA_PATHS:
        if data.get(key) not in (None, "synthetic"):
            data[key] = str(Path(data[key]).expanduser().resolve())
    return from_dict(RunConfig, merged, where=where)


def _teacher_table(table: dict, where: str) -> dict:
    """{"run": absolute path} or {"train": a resolved RunConfig}, from either form."""
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: teacher must be a table")
    if "train" in table and not ({"preset", "config"} & set(table)):
        return table  # already resolved (a saved config.json)
    if table.get("run") is not None:
        extra = sorted(set(table) - {"run"})
        if extra:
            raise ConfigError(
                f"{where}: teacher.run uses an existing run as it is, drop {', '.join(extra)}"
            )
        return {"run": str(Path(table["run"]).expanduser().resolve())}
    if not ({"preset", "config"} & set(table)):
        raise ConfigError(
            f"{where}: the teacher needs run = RUN_DIR, or preset = 'configs/X.toml' and/or "
            "[teacher.config] tables to train one"
        )
    rest = {key: value for key, value in table.items() if key != "run"}
    return {"train": to_dict(teacher_run_config(rest, where=f"{where}: teacher"))}


def _budget_table(table: dict) -> dict:
    """Budget texts ('0.9x', 0.33) as Bound tables; saved Bound tables pass through."""
    out = dict(table)
    for name in ("min_recall", "max_latency_ms", "max_bytes"):
        value = out.get(name)
        if value is not None and not isinstance(value, dict):
            out[name] = dataclasses.asdict(Bound.parse(value, f"budget.{name}"))
    return out


def _check_ints(what: str, values, *, low: int, empty: bool = True) -> None:
    if not empty and not values:
        raise ConfigError(f"{what} is empty: expected at least one value")
    bad = [v for v in values if isinstance(v, bool) or not isinstance(v, int) or v < low]
    if bad:
        raise ConfigError(f"{what}: {bad} are not integers >= {low}")
    _check_unique(what, values)


def _check_unique(what: str, values) -> None:
    repeated = sorted({str(v) for v in values if list(values).count(v) > 1})
    if repeated:
        raise ConfigError(f"{what} lists {', '.join(repeated)} more than once")


def with_overrides(
    config: SweepConfig,
    *,
    teacher_run: Path | None = None,
    min_recall: str | None = None,
    max_latency_ms: str | None = None,
    max_bytes: str | None = None,
    device: str | None = None,
) -> SweepConfig:
    """The config with a given teacher run and budget bounds (texts as in the [budget] table)."""
    if teacher_run is not None:
        teacher = TeacherConfig(run=str(Path(teacher_run).expanduser().resolve()))
        config = dataclasses.replace(config, teacher=teacher)
    bounds = {
        name: Bound.parse(text, f"--{name.replace('_', '-')}")
        for name, text in (
            ("min_recall", min_recall),
            ("max_latency_ms", max_latency_ms),
            ("max_bytes", max_bytes),
        )
        if text is not None
    }
    if device is not None:
        bounds["device"] = device
    if bounds:
        config = dataclasses.replace(config, budget=dataclasses.replace(config.budget, **bounds))
    return config
