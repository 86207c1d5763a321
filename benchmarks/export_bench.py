"""What export costs and saves: file bytes, parity and batch-1 latency of every export variant.

For each run (given with --run, or trained here at MovieLens-100K's sizes: 943 users, 1682
items, on the synthetic generator or on u.data with --data), the script exports:

- fp32 (NCF folded and unfolded), fp32 with the seen-item mask,
- int8 dynamic, static (MinMax) and weights-only, all from the folded graph,

each through `export_run` with validation on, and reads its bundle back with the torch-free
reader. A row gives the file's bytes (and its share of the fp32 file), the parity the
validation measured (fp32: largest |Δscore| against PyTorch; int8: top-k agreement and the
relative falls of Recall@k and NDCG@k against fp32) and the median and p90 wall time of a
batch-1 query on one onnxruntime thread, over --queries random users after a warm-up. On a shared
machine the medians are the figures to trust.

    .venv/bin/python benchmarks/export_bench.py [--run RUN_DIR ...] [--data PATH/u.data]
        [--epochs 5] [--dim 8] [--k 50] [--queries 500] [--target x86-avx2]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from edgerec.export.config import ExportConfig, QuantConfig
from edgerec.export.job import export_run
from edgerec.export.validate import Thresholds
from edgerec.runtime.bundle import Bundle

WARMUP = 50
# Export even what fails the checks, to report it: rows mark each value against the defaults.
PERMISSIVE = Thresholds(
    fp32_max_delta=float("inf"),
    fp32_agreement=0.0,
    int8_agreement=0.0,
    int8_metric_drop=float("inf"),
)
DEFAULTS = Thresholds()


def train_runs(root: Path, data: str | None, epochs: int, dim: int) -> list[Path]:
    """A BPR and an NCF run at MovieLens-100K's sizes."""
    from edgerec.data.config import DataConfig
    from edgerec.data.synthetic import SyntheticConfig
    from edgerec.models.base import ModelConfig
    from edgerec.train.config import TrainConfig
    from edgerec.train.job import train_run
    from edgerec.train.rundir import RunConfig

    if data:
        data_config = DataConfig(source=str(Path(data).resolve()))
    else:
        # 100,000 interactions over 943 x 1682, as in ML-100K.
        synthetic = SyntheticConfig(n_users=943, n_items=1682, mean_interactions=106)
        data_config = DataConfig(synthetic=synthetic)
    runs = []
    for name in ("bpr", "ncf"):
        config = RunConfig(
            data=data_config,
            model=ModelConfig(name=name, dim=dim),
            train=TrainConfig(epochs=epochs, lr=0.01, patience=epochs),
        )
        out = root / f"run-{name}"
        train_run(config, out)
        runs.append(out)
    return runs


def variants(kind: str, k: int, target: str) -> list[tuple[str, ExportConfig]]:
    out = [("fp32", ExportConfig(k=k))]
    if kind == "ncf":
        out.append(("fp32 unfolded", ExportConfig(k=k, fold=False)))
    out.append(("fp32 exclude-seen", ExportConfig(k=k, exclude_seen=True)))
    for mode in ("dynamic", "static", "weights-only"):
        out.append((f"int8 {mode}", ExportConfig(k=k, quant=QuantConfig(mode=mode, preset=target))))
    return out


def time_queries(bundle: Bundle, n: int, seed: int = 0) -> tuple[float, float]:
    """Median and p90 milliseconds of a batch-1 query on one thread."""
    session = bundle.session(threads=1)
    users = np.random.default_rng(seed).integers(0, bundle.n_users, size=WARMUP + n)
    times = []
    for i, user in enumerate(users):
        feed = {"user": np.array([user], dtype=np.int64)}
        start = time.perf_counter()
        session.run(None, feed)
        if i >= WARMUP:  # the first runs warm up the arena and the caches
            times.append(time.perf_counter() - start)
    times.sort()
    return 1e3 * statistics.median(times), 1e3 * times[int(0.9 * (len(times) - 1))]


def parity(manifest: dict) -> str:
    """The checks' values, each marked ✗ where the default thresholds would fail it."""
    checks = {c["name"].split(" vs ")[0]: c for c in manifest["validation"]["checks"]}
    values = {name: c["value"] for name, c in checks.items()}
    k = manifest["k"]
    if manifest["quantization"] is None:
        delta = values["fp32 max |Δscore|"]
        return f"max|Δ| {delta:.1e}{mark(delta <= DEFAULTS.fp32_max_delta)}"
    agreement = values[f"int8 top-{k} agreement"]
    text = f"top-{k} {agreement:.3f}{mark(agreement >= DEFAULTS.int8_agreement)}"
    for metric in (f"recall@{k}", f"ndcg@{k}"):
        check = checks[f"int8 {metric} drop"]
        fp32 = float(check["detail"].rpartition("fp32 ")[2])
        allowed = max(DEFAULTS.int8_metric_drop * fp32, DEFAULTS.int8_metric_floor)
        change = -100 * check["value"] / fp32 if fp32 else 0.0
        text += f", {metric.split('@')[0]} {change:+.1f}%{mark(check['value'] <= allowed)}"
    return text


def mark(ok: bool) -> str:
    return "" if ok else " ✗"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, action="append", help="A run directory (repeatable).")
    parser.add_argument("--data", help="Train on this ratings file (u.data) instead of synthetic.")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--dim", type=int, default=8)
    parser.add_argument("--k", type=int, default=50)
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--target", default="x86-avx2")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="edgerec-export-bench-") as tmp:
        root = Path(tmp)
        runs = args.run or train_runs(root, args.data, args.epochs, args.dim)
        header = (
            f"{'run':<10} {'variant':<18} {'bytes':>10} {'/fp32':>6}  {'parity':<44} "
            f"{'p50 ms':>7} {'p90 ms':>7}"
        )
        print(header)
        print("-" * len(header))
        for run in runs:
            from edgerec.train.rundir import open_run

            kind = open_run(run).config.model.name
            fp32_bytes = None
            for label, config in variants(kind, args.k, args.target):
                out = root / "bundles" / f"{run.name}-{label.replace(' ', '-')}"
                manifest = export_run(run, out, config, thresholds=PERMISSIVE)
                size = manifest["file"]["bytes"]
                fp32_bytes = fp32_bytes or size
                p50, p90 = time_queries(Bundle.open(out), args.queries)
                print(
                    f"{run.name[:10]:<10} {label:<18} {size:>10,} {size / fp32_bytes:>6.2f}  "
                    f"{parity(manifest):<44} {p50:>7.3f} {p90:>7.3f}"
                )


if __name__ == "__main__":
    main()
