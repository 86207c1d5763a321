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
    accuracy: dict | None = None  # computed on the host once, when the graph's top K is short


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
            _fill_accuracy(row, export, config.k)
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


# Emulated seconds allowed per call of a bench (timed or warm-up), and per export for its start
# and accuracy: generous, since qemu runs 10-50x slower than the host.
_ARM64_S_PER_CALL, _ARM64_S_PER_EXPORT = 2.0, 300.0


def _fill_accuracy(row: dict, export: Export, k: int) -> None:
    """Accuracy from every item's score where the graph's own top K could not give it.

    A graph with TopK inside returns too few items for users whose top K is mostly training
    items (`edgerec.runtime.bench.bundle_accuracy`); here, on the host, the onnx package can
    expose the scores that go into TopK, and the same evaluator ranks them. The figure is the
    shipped file's own ranking, so it stands in the row; the note says where it came from.
    """
    if row.get(f"recall@{k}") is not None or export.evalset is None:
        return
    if export.accuracy is None:
        from edgerec.export.validate import graph_accuracy

        masked, held_out = export.evalset
        export.accuracy = graph_accuracy(
            export.bundle.model_path, masked, held_out, export.bundle.n_items, k
        )
    row[f"recall@{k}"] = export.accuracy[f"recall@{k}"]
    row[f"ndcg@{k}"] = export.accuracy[f"ndcg@{k}"]
    row["accuracy_note"] = "from every item's score (the input of the graph's TopK), on the host"


def run_on_arm64(exports: list[Export], config: BenchConfig) -> Iterator[dict]:
    """AArch64 under qemu (`edgerec.targets.arm64`): the runtime's own bench, emulated.

    The emulated interpreter runs `python -m edgerec.runtime bench` on the bundles where they
    lie, with the aarch64 numpy and onnxruntime: outputs, accuracy and the int8 kernels are the
    ARM build's. Its latencies say nothing about a real ARM core, since qemu translates every
    instruction; memory includes qemu's own. The runtime comes from a runner.pyz built into a
    temporary folder, not from where this edgerec is installed: a site-packages on the
    emulated path would put x86 numpy before the aarch64 one.
    """
    import json
    import tempfile

    from edgerec.export.runner import RUNNER, build_runner
    from edgerec.targets import arm64

    if config.against_torch:
        raise BenchError(
            "--against-torch times PyTorch on this host: it does not apply to --device arm64"
        )
    env = _arm64_env()
    settings = config.settings()

    with tempfile.TemporaryDirectory(prefix="edgerec-arm64-") as folder:
        tmp = Path(folder)
        runner = tmp / RUNNER
        build_runner(runner)
        args = [*_arm64_bench_args(exports, settings, tmp), "--out", str(tmp / "rows.json")]
        result = arm64.run_python(
            env, ["-m", "edgerec.runtime", "bench", *args],
            extra_path=[runner], timeout=_arm64_timeout(config, len(exports)),
        )  # fmt: skip
        if result.returncode != 0:
            raise BenchError(f"the emulated bench failed: {_last_line(result.stderr)}")
        rows = json.loads((tmp / "rows.json").read_text())["rows"]

        by_path = {str(e.bundle.path): e for e in exports}
        for row in rows:
            export = by_path.get(row["path"])
            if export is not None:
                row["model"], row["macs"] = export.label, export.macs
                if export.evalset is None:
                    row["accuracy_note"] = export.evalset_note
                if settings.memory:
                    row.update(_arm64_memory(env, runner, export.bundle, row, settings))
            yield row


def _arm64_env():
    """The built arm64 environment, or a BenchError saying how to get one."""
    from edgerec.targets import arm64

    fix = "build it once with `edgerec device setup arm64`"
    reason = arm64.unavailable_reason()
    if reason:
        raise BenchError(f"--device arm64 is not available here: {reason}; then {fix}")
    env = arm64.Arm64Env(arm64.default_root())
    if not env.is_ready():
        raise BenchError(f"--device arm64 is not available yet: nothing built at {env.root}: {fix}")

    import importlib.metadata

    held = env.manifest().get("packages", {}).get("onnxruntime")
    here = importlib.metadata.version("onnxruntime")
    if held != here:
        log.warning(
            "arm64 holds onnxruntime %s, this host %s: the rows compare other code; rebuild "
            "with `edgerec device setup arm64 --force`",
            held,
            here,
        )
    return env


def _arm64_bench_args(exports: list[Export], settings: core.Settings, tmp: Path) -> list[str]:
    """The options of `edgerec.runtime.bench run` for `settings`, and one evalset per export."""
    from edgerec.runtime.evalset import save_evalset

    args = [str(e.bundle.path) for e in exports]
    args += [
        "--batch", ",".join(map(str, settings.batches)),
        "--threads", ",".join(map(str, settings.threads)),
        "--warmup", str(settings.warmup), "--runs", str(settings.runs),
        "--k", str(settings.k), "--seed", str(settings.seed),
        "--device", settings.device, "--no-memory",  # measured from here: see _arm64_memory
    ]  # fmt: skip
    if settings.emulated:
        args.append("--emulated")
    if not settings.arena:
        args.append("--no-arena")
    for i, export in enumerate(exports):
        # The evalset the host found: the bundle's own, one rebuilt from the lineage run (saved
        # for the emulated side), or none (a path that does not exist; the note is set after).
        file = export.bundle.path / EVALSET
        if not file.is_file():
            file = tmp / f"evalset-{i}.npz"
            if export.evalset is not None:
                save_evalset(file, *export.evalset)
        args += ["--evalset", str(file)]
    return args


def _arm64_memory(env, runner: Path, bundle: Bundle, row: dict, settings: core.Settings) -> dict:
    """A row's memory, from a fresh emulated interpreter: the emulated bench cannot start one
    itself, since it would exec an aarch64 binary without binfmt_misc."""
    import json

    from edgerec.targets import arm64

    command = [
        "-m", "edgerec.runtime.bench", "memory", str(bundle.model_path),
        "--n-users", str(bundle.n_users), "--batch", str(row["batch"]),
        "--threads", str(row["threads"]), "--seed", str(settings.seed),
    ]  # fmt: skip
    if not settings.arena:
        command.append("--no-arena")
    result = arm64.run_python(env, command, extra_path=[runner], timeout=_ARM64_S_PER_EXPORT)
    if result.returncode != 0:
        raise BenchError(
            f"the emulated memory measurement of {bundle.path} failed: {_last_line(result.stderr)}"
        )
    memory = core.Memory(**json.loads(result.stdout.strip().splitlines()[-1]))
    return {
        "peak_rss_mb": memory.peak_mb,
        "baseline_rss_mb": memory.baseline_mb,
        "rss_delta_mb": memory.delta_mb,
    }


def _arm64_timeout(config: BenchConfig, n_exports: int) -> float:
    calls = (config.warmup + config.runs) * config.n_settings * (1 + n_exports)
    return _ARM64_S_PER_EXPORT * (1 + n_exports) + _ARM64_S_PER_CALL * calls


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:200] if lines else "no output"


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
