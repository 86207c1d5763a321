"""The measurement core of `edgerec bench`: latency, memory and accuracy of a bundle under
onnxruntime, and the per-call cost of onnxruntime itself (the floor).

It imports numpy, onnxruntime and the standard library only, so that the very same code runs
on the host, on a device and under arm64 emulation, and gives the same JSON rows everywhere:

    python -m edgerec.runtime.bench run EXPORT_DIR [EXPORT_DIR ...] --batch 1,64 --threads 1

What is measured, and how:

- Latency: one session per (bundle, threads), created at ORT_ENABLE_ALL (lower levels leave a
  quantized graph's DequantizeLinear on whole tables, which then runs on every call) with
  explicit thread counts (`edgerec.runtime.bundle.open_session`). Per batch size, `warmup`
  untimed calls, then `runs` calls each timed alone with `time.perf_counter_ns`; p50, p90, p99
  and mean in ms, throughput in users/s. Each call gets its own batch from a fixed, seeded
  sample of valid user indices, so every runtime and model sees the same users. Session
  creation is timed apart (`session_ms`).
- The floor: the same harness on a one-node Identity graph over the same int64 [batch] input:
  what onnxruntime costs per call before any model work. `x_floor` is a row's p50 over the
  floor's p50 at the same batch and threads.
- Memory: a fresh interpreter per row (`python -m edgerec.runtime.bench memory ...`), because
  the peak resident set is a high-water mark that never falls, and this process has held other
  models. Baseline: the peak once numpy and onnxruntime are imported; peak: after session
  creation and a few calls; `rss_delta_mb` = peak - baseline, what the model costs in memory.
  On Linux the peak is VmHWM, reset after the imports (see `peak_rss_mb`, `baseline_rss_mb`).
- Accuracy: Recall@K and NDCG@K on the test split by `edgerec.runtime.metrics.rank_and_score`,
  the evaluator training reports with, on (masked, held-out) rows from an evalset
  (`edgerec.runtime.evalset`). See `bundle_accuracy` for bundles that return a top k.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from edgerec.errors import BenchError, EdgerecError
from edgerec.runtime.bundle import Bundle, open_session
from edgerec.runtime.metrics import CSR, rank_and_score

log = logging.getLogger(__name__)

RUNTIME = "onnxruntime"
FLOOR = "floor"
# A serialized ONNX model: one Identity node from `user` int64 [batch] to `out`, opset 13, IR
# version 8 (onnxruntime >= 1.10 loads it). Built once with onnx.helper (tests/test_bench.py
# rebuilds it and checks these bytes), because a device has onnxruntime but not onnx.
FLOOR_MODEL = (
    b'\x08\x08:W\n\x15\n\x04user\x12\x03out"\x08Identity\x12\redgerec_floorZ\x17\n\x04user'
    b"\x12\x0f\n\r\x08\x07\x12\t\n\x07\x12\x05batchb\x16\n\x03out\x12\x0f\n\r\x08\x07\x12\t"
    b"\n\x07\x12\x05batchB\x04\n\x00\x10\r"
)
# A memory child makes a session and this many calls: a call's buffers reach their peak on
# the first call, the arena may grow on the second.
MEMORY_CALLS = 3
_ACCURACY_BATCH = 256
_MEMORY_TIMEOUT_S = 600


@dataclass(frozen=True)
class Settings:
    """How to measure; every row records the settings it was measured with."""

    batches: tuple[int, ...] = (1, 64)
    threads: tuple[int, ...] = (1, 2)
    warmup: int = 10
    runs: int = 100
    arena: bool = True
    k: int = 10
    memory: bool = True
    seed: int = 0
    device: str = "cpu"
    emulated: bool = False

    def __post_init__(self) -> None:
        for name in ("batches", "threads"):
            values = getattr(self, name)
            if not values or not all(_positive_int(v) for v in values):
                raise BenchError(f"{name} must be integers >= 1, got {values!r}")
        for name, low in (("warmup", 0), ("runs", 1), ("k", 1)):
            value = getattr(self, name)
            if not _positive_int(value, low):
                raise BenchError(f"{name} must be an integer >= {low}, got {value!r}")


@dataclass(frozen=True)
class Timing:
    """Per-call latency of `runs` timed calls, in milliseconds."""

    p50: float
    p90: float
    p99: float
    mean: float

    @classmethod
    def from_ns(cls, ns: np.ndarray) -> Timing:
        ms = np.asarray(ns, dtype=np.float64) / 1e6
        p50, p90, p99 = np.percentile(ms, [50, 90, 99])
        return cls(float(p50), float(p90), float(p99), float(ms.mean()))

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Memory:
    """Resident set of a fresh process, in MiB: after its imports, and at its peak."""

    baseline_mb: float
    peak_mb: float

    @property
    def delta_mb(self) -> float:
        return self.peak_mb - self.baseline_mb


@dataclass(frozen=True)
class Accuracy:
    """Recall@k and NDCG@k, or None for both with `note` saying why they could not be had."""

    recall: float | None
    ndcg: float | None
    note: str | None = None


def user_batches(n_users: int, batch: int, count: int, seed: int = 0) -> list[np.ndarray]:
    """`count` int64 [batch] arrays of valid user indices: one seed, the same users for all."""
    rng = np.random.default_rng(seed)
    users = rng.integers(0, n_users, size=(count, batch), dtype=np.int64)  # [count, batch]
    return [np.ascontiguousarray(row) for row in users]


def time_calls(call: Callable, inputs: Sequence, *, warmup: int, runs: int) -> Timing:
    """Time `call(inputs[i])` alone, `runs` times, after `warmup` untimed calls."""
    for i in range(warmup):
        call(inputs[i % len(inputs)])

    ns = np.empty(runs, dtype=np.int64)
    # The collector would otherwise run inside some timed calls and charge the runtime for
    # garbage the harness made; it is back on between measurements.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for i in range(runs):
            x = inputs[i % len(inputs)]
            start = time.perf_counter_ns()
            call(x)
            ns[i] = time.perf_counter_ns() - start
    finally:
        if gc_was_enabled:
            gc.enable()
    return Timing.from_ns(ns)


def timed_session(model: Path | bytes, threads: int, arena: bool) -> tuple[object, float]:
    """(session, milliseconds its creation took: reading, optimizing and planning the graph)."""
    start = time.perf_counter_ns()
    session = open_session(model, threads=threads, arena=arena)
    return session, (time.perf_counter_ns() - start) / 1e6


def session_latency(session, users: Sequence[np.ndarray], settings: Settings) -> Timing:
    name = session.get_inputs()[0].name
    feeds = [{name: u} for u in users]  # built before timing: the harness's cost, not ORT's
    return time_calls(
        lambda feed: session.run(None, feed), feeds, warmup=settings.warmup, runs=settings.runs
    )


def peak_rss_mb() -> float:
    """This process's peak resident set so far, in MiB.

    On Linux it is VmHWM from /proc/self/status, not ru_maxrss: the kernel carries ru_maxrss
    over exec from the forked parent, so a child of a large process (a bench that has loaded
    models, or torch) would start with the parent's peak and never see its own.
    """
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 2**10  # kB
    try:
        import resource
    except ImportError:
        raise BenchError("peak RSS needs /proc or the resource module: use --no-memory") from None
    # Limitation: off Linux this is ru_maxrss, which may include what the parent had at exec.
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # macOS: bytes, else KiB


def reset_peak_rss() -> bool:
    """Set the peak back to the current resident set (Linux >= 4.0); False where it cannot."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def baseline_rss_mb() -> float:
    """The resident set to measure a model against, taken once the imports are done.

    Importing leaves transient peaks (onnxruntime's import peaks above where it settles), under
    which a small model's whole cost would hide; resetting the peak here makes peak − baseline
    what the session and its calls added.
    """
    if not reset_peak_rss():
        log.debug("cannot reset the peak RSS here: the baseline includes the imports' peak")
    return peak_rss_mb()


def child_memory(command: list[str], what: str) -> Memory:
    """Run a memory child (`command` prints one JSON line) and read its result."""
    env = dict(os.environ)
    # The child imports edgerec from where this process did, installed or not.
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, env=env, timeout=_MEMORY_TIMEOUT_S
        )
    except subprocess.TimeoutExpired:
        raise BenchError(
            f"measuring the memory of {what} took over {_MEMORY_TIMEOUT_S} s"
        ) from None
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise BenchError(f"the memory measurement of {what} failed: {last}")
    payload = json.loads(done.stdout.strip().splitlines()[-1])
    return Memory(payload["baseline_mb"], payload["peak_mb"])


def session_memory(model: Path, n_users: int, batch: int, threads: int, arena: bool) -> Memory:
    """Peak RSS of a fresh interpreter that creates a session on `model` and runs it."""
    command = [
        sys.executable,
        "-m",
        "edgerec.runtime.bench",
        "memory",
        str(model),
        "--n-users",
        str(n_users),
        "--batch",
        str(batch),
        "--threads",
        str(threads),
    ]
    if not arena:
        command.append("--no-arena")
    return child_memory(command, str(model))


def bundle_accuracy(bundle: Bundle, session, masked: CSR, held_out: CSR, k: int) -> Accuracy:
    """Recall@k and NDCG@k of the bundle's graph on (masked, held out).

    A scores-only graph gives every item's score, which the evaluator takes as it is. A graph
    with TopK inside returns only its top K' (the export's k), and the evaluator must rank after
    masking each user's training and validation items. Masking only removes items, so the order
    of the rest is unchanged: when a user's top K' holds at least k unmasked items, the first k
    of them in the graph's order are exactly that user's top k of the masked ranking. So the
    returned items get scores K', K'-1, ... in their order (masked ones -inf, every other item
    -inf), and `rank_and_score` ranks that. A user with fewer than k unmasked items in the top
    K' has an unknown top k: instead of a wrong figure the result is None with a note. A trained
    model ranks its training items high, so without --exclude-seen that is the common case
    unless K' is at least k plus the most items any user has masked.
    """
    name = session.get_inputs()[0].name
    if bundle.scores_only:

        def score_all(users: np.ndarray) -> np.ndarray:
            return session.run(None, {name: users.astype(np.int64)})[0]  # [batch, n_items]

        metrics = rank_and_score(score_all, masked, held_out, bundle.n_items, (k,), _ACCURACY_BATCH)
        return Accuracy(metrics[f"recall@{k}"], metrics[f"ndcg@{k}"])

    if k > bundle.k:
        return Accuracy(None, None, f"the export returns its top {bundle.k}, fewer than --k {k}")
    short = []

    def graph_order_scores(users: np.ndarray) -> np.ndarray:
        items = session.run(None, {name: users.astype(np.int64)})[0]  # [batch, K']
        seen = np.zeros((len(users), bundle.n_items), dtype=bool)  # [batch, n_items]
        seen[masked.gather(users)] = True
        keep = ~np.take_along_axis(seen, items, axis=1)  # [batch, K']
        short.append(int((keep.sum(axis=1) < k).sum()))

        rank = np.arange(bundle.k, 0, -1, dtype=np.float32)  # [K']
        scores = np.full((len(users), bundle.n_items), -np.inf, dtype=np.float32)
        np.put_along_axis(scores, items, np.where(keep, rank, -np.inf), axis=1)
        return scores

    metrics = rank_and_score(
        graph_order_scores, masked, held_out, bundle.n_items, (k,), _ACCURACY_BATCH
    )
    if sum(short):
        n_users = int((held_out.lengths(np.arange(len(held_out.indptr) - 1)) > 0).sum())
        note = (
            f"{sum(short)} of {n_users} users have fewer than {k} unmasked items in the graph's "
            f"top {bundle.k}: export with --exclude-seen, a larger --k, or --scores-only"
        )
        return Accuracy(None, None, note)
    return Accuracy(metrics[f"recall@{k}"], metrics[f"ndcg@{k}"])


def open_bundle(path: Path) -> Bundle:
    path = Path(path)
    if not path.is_dir():
        raise BenchError(f"{path} does not exist or is not a directory: expected an export dir")
    return Bundle.open(path)


def check_evalset(bundle: Bundle, masked: CSR, held_out: CSR) -> None:
    for name, csr in (("masked", masked), ("held-out", held_out)):
        n_users = len(csr.indptr) - 1
        if n_users != bundle.n_users or (csr.items.size and csr.items.max() >= bundle.n_items):
            raise BenchError(
                f"{bundle.path}: the evalset's {name} rows ({n_users} users, items up to "
                f"{int(csr.items.max(initial=0))}) do not fit the bundle's {bundle.n_users} users "
                f"and {bundle.n_items} items: it belongs to other data"
            )


def precision_of(manifest: Mapping) -> str:
    quantization = manifest.get("quantization")
    return "fp32" if not quantization else f"int8-{quantization['mode']}"


def row(
    *,
    model: str,
    path: str | None,
    runtime: str,
    precision: str | None,
    batch: int,
    threads: int,
    settings: Settings,
    timing: Timing,
    session_ms: float | None,
    memory: Memory | None,
    model_bytes: int | None,
    accuracy: Accuracy | None,
    floor: Timing | None,
) -> dict:
    """One result row; every row has every key, None where a value does not apply."""
    k = settings.k
    return {
        "model": model,
        "path": path,
        "runtime": runtime,
        "device": settings.device,
        "emulated": settings.emulated,
        "precision": precision,
        "batch": batch,
        "threads": threads,
        "arena": settings.arena,
        "warmup": settings.warmup,
        "runs": settings.runs,
        "latency_ms": timing.to_dict(),
        "throughput": batch * 1000.0 / timing.mean,
        "session_ms": session_ms,
        "floor_p50_ms": None if floor is None else floor.p50,
        "x_floor": None if floor is None else timing.p50 / floor.p50,
        "vs_torch": None,
        "peak_rss_mb": None if memory is None else memory.peak_mb,
        "baseline_rss_mb": None if memory is None else memory.baseline_mb,
        "rss_delta_mb": None if memory is None else memory.delta_mb,
        "model_bytes": model_bytes,
        "macs": None,
        "k": k,
        f"recall@{k}": None if accuracy is None else accuracy.recall,
        f"ndcg@{k}": None if accuracy is None else accuracy.ndcg,
        "accuracy_note": None if accuracy is None else accuracy.note,
    }


def bench_floor(settings: Settings, floors: dict) -> Iterator[dict]:
    """Floor rows, one per (batch, threads); fills `floors[(batch, threads)]` with each Timing."""
    for threads in settings.threads:
        session, session_ms = timed_session(FLOOR_MODEL, threads, settings.arena)
        for batch in settings.batches:
            # Identity reads no table, so any int64 values do: the same draw as a model's.
            users = user_batches(2**31 - 1, batch, settings.runs, settings.seed)
            timing = session_latency(session, users, settings)
            floors[batch, threads] = timing
            yield row(
                model=FLOOR,
                path=None,
                runtime=RUNTIME,
                precision=None,
                batch=batch,
                threads=threads,
                settings=settings,
                timing=timing,
                session_ms=session_ms,
                memory=None,
                model_bytes=len(FLOOR_MODEL),
                accuracy=None,
                floor=timing,
            )


def bench_bundle(
    bundle: Bundle,
    settings: Settings,
    *,
    label: str,
    evalset: tuple[CSR, CSR] | None,
    floors: Mapping,
    no_evalset_note: str = "no evalset: export with an evalset.npz or pass one",
) -> Iterator[dict]:
    """The bundle's rows, one per (batch, threads), accuracy measured once and shared."""
    if evalset is None:
        accuracy = Accuracy(None, None, no_evalset_note)
    else:
        check_evalset(bundle, *evalset)
        session = open_session(bundle.model_path, threads=max(settings.threads))
        accuracy = bundle_accuracy(bundle, session, *evalset, settings.k)
    if accuracy.note:
        # Info, not a warning: the note travels in every row (accuracy_note), and on the host
        # `edgerec bench` fills the figure in from the graph's full scores.
        log.info("%s: no accuracy from the graph's top k: %s", label, accuracy.note)

    for threads in settings.threads:
        session, session_ms = timed_session(bundle.model_path, threads, settings.arena)
        for batch in settings.batches:
            users = user_batches(bundle.n_users, batch, settings.runs, settings.seed)
            timing = session_latency(session, users, settings)
            memory = None
            if settings.memory:
                memory = session_memory(
                    bundle.model_path, bundle.n_users, batch, threads, settings.arena
                )
            log.debug("%s batch %d threads %d: p50 %.3f ms", label, batch, threads, timing.p50)
            yield row(
                model=label,
                path=str(bundle.path),
                runtime=RUNTIME,
                precision=precision_of(bundle.manifest),
                batch=batch,
                threads=threads,
                settings=settings,
                timing=timing,
                session_ms=session_ms,
                memory=memory,
                model_bytes=int(bundle.manifest["file"]["bytes"]),
                accuracy=accuracy,
                floor=floors.get((batch, threads)),
            )


def labels_of(paths: Sequence[Path]) -> list[str]:
    """Each bundle's directory name, or its whole path where two names collide."""
    names = [Path(p).name for p in paths]
    return [str(p) if names.count(n) > 1 else n for p, n in zip(paths, names, strict=True)]


def runtime_info() -> dict:
    """What the rows were measured with, from the device itself."""
    import platform

    import onnxruntime as ort

    return {
        "machine": platform.machine(),
        "system": platform.system(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "onnxruntime": ort.__version__,
        "cores": os.cpu_count(),
    }


def _positive_int(value, low: int = 1) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= low


def _memory_child(args: argparse.Namespace) -> int:
    import onnxruntime  # noqa: F401  (part of the baseline: every process that serves has it)

    users = user_batches(args.n_users, args.batch, MEMORY_CALLS, args.seed)
    baseline = baseline_rss_mb()
    session = open_session(Path(args.model), threads=args.threads, arena=args.arena)
    name = session.get_inputs()[0].name
    for u in users:
        session.run(None, {name: u})
    sys.stdout.write(json.dumps({"baseline_mb": baseline, "peak_mb": peak_rss_mb()}) + "\n")
    return 0


def _run_child(args: argparse.Namespace) -> int:
    """Bench bundles on this machine and write {"runtime": ..., "rows": [...]} as JSON."""
    from edgerec.runtime.evalset import EVALSET, load_evalset

    settings = Settings(
        batches=_ints(args.batch),
        threads=_ints(args.threads),
        warmup=args.warmup,
        runs=args.runs,
        arena=args.arena,
        k=args.k,
        memory=args.memory,
        seed=args.seed,
        device=args.device,
        emulated=args.emulated,
    )
    if args.evalset and len(args.evalset) != len(args.exports):
        raise BenchError(
            f"--evalset given {len(args.evalset)} times for {len(args.exports)} exports: "
            "give one per export, in order"
        )
    bundles = [open_bundle(Path(p)) for p in args.exports]
    floors: dict = {}
    rows = list(bench_floor(settings, floors))
    for i, (bundle, label) in enumerate(zip(bundles, labels_of(args.exports), strict=True)):
        file = Path(args.evalset[i]) if args.evalset else bundle.path / EVALSET
        evalset = load_evalset(file) if file.is_file() else None
        rows += bench_bundle(
            bundle,
            settings,
            label=label,
            evalset=evalset,
            floors=floors,
            no_evalset_note=f"no evalset: {file} does not exist",
        )
    payload = {"runtime": runtime_info(), "settings": asdict(settings), "rows": rows}
    text = json.dumps(payload, indent=2) + "\n"
    if args.out:
        Path(args.out).write_text(text)
    else:
        sys.stdout.write(text)
    return 0


def _ints(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise BenchError(f"expected comma-separated integers such as 1,64, got '{text}'") from None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m edgerec.runtime.bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    modes = parser.add_subparsers(dest="mode", required=True)

    run = modes.add_parser("run", help="bench bundles here; JSON rows on stdout or --out")
    run.add_argument("exports", nargs="+")
    run.add_argument("--batch", default="1,64")
    run.add_argument("--threads", default="1,2")
    run.add_argument("--warmup", type=int, default=10)
    run.add_argument("--runs", type=int, default=100)
    run.add_argument("--k", type=int, default=10)
    run.add_argument("--no-arena", dest="arena", action="store_false")
    run.add_argument("--no-memory", dest="memory", action="store_false")
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--device", default="cpu", help="the label rows carry")
    run.add_argument("--emulated", action="store_true", help="mark the rows as emulated")
    run.add_argument("--evalset", action="append", help="one per export, in order")
    run.add_argument("--out", help="write the JSON here instead of stdout")

    memory = modes.add_parser("memory", help="(internal) peak RSS of one session, as JSON")
    memory.add_argument("model")
    memory.add_argument("--n-users", type=int, required=True)
    memory.add_argument("--batch", type=int, required=True)
    memory.add_argument("--threads", type=int, required=True)
    memory.add_argument("--no-arena", dest="arena", action="store_false")
    memory.add_argument("--seed", type=int, default=0)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return _memory_child(args) if args.mode == "memory" else _run_child(args)
    except EdgerecError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2


if __name__ == "__main__":
    sys.exit(main())
