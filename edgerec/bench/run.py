"""`edgerec bench` as a library call: exports → rows of latency, memory, size and accuracy.

    open every export (a missing or corrupt one fails before anything is measured)
    → find each export's test split → count its multiply-adds
    → on the device: the floor, then each export × threads × batch (`edgerec.runtime.bench`)
    → with --against-torch, the same in eager PyTorch, and the onnx/torch latency ratio

Each device has its runner in `RUNNERS`; a runner takes the prepared exports and yields rows.
The test split comes from EXPORT_DIR/evalset.npz when the export wrote one, otherwise from the
run directory named in the manifest's lineage, rebuilt and checked against the data fingerprint
the manifest records.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from edgerec.bench.config import BenchConfig, Device
from edgerec.errors import BenchError, EdgerecError
from edgerec.runtime import bench as core
from edgerec.runtime.bundle import Bundle
from edgerec.runtime.evalset import EVALSET, load_evalset
from edgerec.runtime.metrics import CSR

log = logging.getLogger(__name__)

RowCallback = Callable[[dict], None]


@dataclass
class Export:
    """An opened export and what the bench found for it on the host."""

    bundle: Bundle
    label: str
    evalset: tuple[CSR, CSR] | None
    evalset_note: str | None
    macs: int | None
    run: object | None = None  # the lineage run, for --against-torch
    train_pairs: object | None = None


@dataclass
class BenchResult:
    config: BenchConfig
    machine: dict
    runtime: dict
    rows: list[dict] = field(default_factory=list)


def expected_rows(config: BenchConfig) -> int:
    """How many rows `run_bench` yields: the floor, then each export and its eager twin."""
    per_export = 2 if config.against_torch else 1
    return config.n_settings * (1 + per_export * len(config.exports))


def run_bench(config: BenchConfig, *, on_row: RowCallback | None = None) -> BenchResult:
    """Measure every export as `config` says; `on_row(row)` is called as each row is done."""
    from edgerec.bench.machine import machine_info

    exports = prepare(config)
    runner = RUNNERS[Device(config.device)]
    result = BenchResult(config, machine_info(), core.runtime_info())
    for row in runner(exports, config):
        result.rows.append(row)
        if on_row is not None:
            on_row(row)
    _add_torch_ratios(result.rows)
    return result


def prepare(config: BenchConfig) -> list[Export]:
    """Open and check every export, and find what its rows need, before measuring any."""
    from edgerec.bench.macs import count_macs

    paths = [Path(p) for p in config.exports]
    bundles = [core.open_bundle(p) for p in paths]
    datasets: dict[str, object] = {}
    exports = []
    for bundle, label in zip(bundles, core.labels_of(paths), strict=True):
        evalset, note, run = _find_evalset(bundle, datasets)
        export = Export(bundle, label, evalset, note, count_macs(bundle.model_path), run)
        if config.against_torch:
            _attach_run(export, datasets)
        exports.append(export)
    return exports


def run_on_cpu(exports: list[Export], config: BenchConfig) -> Iterator[dict]:
    """This machine's CPU, in this process (memory in fresh child processes)."""
    from edgerec.bench import eager

    settings = config.settings()
    floors: dict = {}
    yield from core.bench_floor(settings, floors)
    for export in exports:
        onnx_rows = core.bench_bundle(
            export.bundle,
            settings,
            label=export.label,
            evalset=export.evalset,
            floors=floors,
            no_evalset_note=export.evalset_note or "no evalset",
        )
        for row in onnx_rows:
            row["macs"] = export.macs
            yield row
        if config.against_torch:
            yield from eager.eager_rows(
                export.bundle,
                export.run,
                settings,
                label=export.label,
                evalset=export.evalset,
                pairs=export.train_pairs,
                floors=floors,
            )


def run_on_arm64(exports: list[Export], config: BenchConfig) -> Iterator[dict]:
    """AArch64 under qemu (`edgerec.targets.arm64`): not wired yet."""
    # The plan: copy each bundle (and its evalset, saved with `save_evalset` when the bundle
    # has none) into the environment, run `python -m edgerec.runtime.bench run ... --device
    # arm64 --emulated --out ROWS.json` with the arm64 interpreter, read the rows back and set
    # each row's "macs" from `exports`. --against-torch does not apply there.
    raise BenchError("--device arm64 is not available yet: run with --device cpu")


RUNNERS: dict[Device, Callable[[list[Export], BenchConfig], Iterator[dict]]] = {
    Device.cpu: run_on_cpu,
    Device.arm64: run_on_arm64,
}


def _find_evalset(bundle: Bundle, datasets: dict):
    """(evalset, why there is none, the lineage run) of one export."""
    file = bundle.path / EVALSET
    if file.is_file():
        return load_evalset(file), None, None
    run_dir = (bundle.manifest.get("lineage") or {}).get("run")
    if not run_dir:
        return None, f"no {EVALSET} and no lineage run in the manifest", None
    try:
        run, dataset = _lineage(bundle, run_dir, datasets)
    except EdgerecError as exc:
        note = f"no {EVALSET}, and its lineage run is unusable: {exc}"
        log.warning("%s: %s", bundle.path, note)
        return None, note, None

    from edgerec.evaluate.metrics import split_csr

    return split_csr(dataset, "test"), None, run


def _lineage(bundle: Bundle, run_dir: str, datasets: dict):
    """The lineage run and its dataset (read once per run), checked against the manifest."""
    from edgerec.errors import RunDirError
    from edgerec.train.rundir import open_run

    run = open_run(Path(run_dir))
    recorded = (bundle.manifest.get("dataset") or {}).get("fingerprint")
    if recorded is not None and run.dataset.get("fingerprint") != recorded:
        raise RunDirError(
            f"{run.path} now holds a run on other data (fingerprint "
            f"{run.dataset.get('fingerprint')}, the export's is {recorded})"
        )
    key = str(run.path.resolve())
    if key not in datasets:
        datasets[key] = run.load_dataset()
    return run, datasets[key]


def _attach_run(export: Export, datasets: dict) -> None:
    """--against-torch needs the lineage run itself: refuse an export without one."""
    from edgerec.bench.eager import train_pairs

    if export.run is None:
        run_dir = (export.bundle.manifest.get("lineage") or {}).get("run")
        if not run_dir:
            raise BenchError(f"{export.bundle.path}: --against-torch needs the lineage run")
        export.run, _ = _lineage(export.bundle, run_dir, datasets)
    if export.bundle.manifest.get("exclude_seen"):
        export.train_pairs = train_pairs(datasets[str(export.run.path.resolve())])


def _add_torch_ratios(rows: list[dict]) -> None:
    """Each onnxruntime row gets vs_torch: its p50 over the eager p50 at the same settings."""
    eager = {
        (r["model"], r["batch"], r["threads"]): r["latency_ms"]["p50"]
        for r in rows
        if r["runtime"] == "torch"
    }
    for r in rows:
        key = (r["model"], r["batch"], r["threads"])
        if r["runtime"] == core.RUNTIME and key in eager:
            r["vs_torch"] = r["latency_ms"]["p50"] / eager[key]
