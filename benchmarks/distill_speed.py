"""Seconds per training epoch of each distillation method, at CiteULike's sizes, one thread.

CiteULike as the Topology Distillation paper uses it has 5,220 users, 25,182 items and 115,142
training interactions; the built-in synthetic generator makes data of those sizes (leave-one-out,
~24 interactions per user). The teacher is BPR-MF dim 200 (trained briefly: speed does not depend
on its quality), the student dim 20, batch 1024, one negative, one thread: the paper's setting.

Per epoch we record wall time and CPU time (`time.process_time`, which other processes on a shared
machine do not inflate). HTD and DE cost most while the Gumbel temperature is high (dense expert
weights) and much less once annealing has made them one-hot, so they run a whole schedule of
`--epochs` epochs and the report gives the first epoch, the median and the mean.

    .venv/bin/python benchmarks/distill_speed.py [--epochs 100] [--quick-epochs 5]

Writes benchmarks/distill_speed.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

import torch

from edgerec.data import DataConfig, SyntheticConfig
from edgerec.distill.job import distill_run, student_config
from edgerec.models.config import ModelConfig
from edgerec.train.config import TrainConfig
from edgerec.train.job import train_run
from edgerec.train.rundir import RunConfig, open_run

ROOT = Path(__file__).resolve().parents[1]
# Reference implementation's seconds per epoch on this machine, as quoted in the distillation issue.
REFERENCE = {"none": 0.5, "ftd": 28.0, "htd": 118.0}
CITEULIKE = SyntheticConfig(n_users=5220, n_items=25182, mean_interactions=24, rank=32, seed=7)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=100, help="schedule length for HTD and DE")
    parser.add_argument("--quick-epochs", type=int, default=5, help="epochs for none and FTD")
    parser.add_argument("--methods", default="none,ftd,htd,de")
    args = parser.parse_args()
    torch.set_num_threads(1)

    with tempfile.TemporaryDirectory() as tmp:
        teacher_dir = Path(tmp) / "teacher"
        data = DataConfig(split="loo", synthetic=CITEULIKE)
        train = TrainConfig(
            epochs=2, lr=1e-3, batch_size=1024, weight_decay=0.0, threads=1, protocol="reference"
        )
        train_run(
            RunConfig(data=data, model=ModelConfig(name="bpr", dim=200), train=train), teacher_dir
        )
        teacher = open_run(teacher_dir)
        sizes = teacher.dataset

        rows = []
        for method in args.methods.split(","):
            epochs = args.epochs if method in ("htd", "de") else args.quick_epochs
            rows.append(_time_method(teacher, method, epochs, Path(tmp) / method))
            print(json.dumps({k: v for k, v in rows[-1].items() if k != "per_epoch"}), flush=True)

    payload = {
        "data": sizes,
        "rows": rows,
        "reference_s": REFERENCE,
        "torch": torch.__version__,
        "threads": 1,
    }
    (ROOT / "benchmarks" / "distill_speed.json").write_text(json.dumps(payload, indent=2) + "\n")
    (ROOT / "benchmarks" / "distill_speed.md").write_text(_markdown(payload, args))


def _time_method(teacher, method: str, epochs: int, out: Path) -> dict:
    # eval_every beyond the schedule: only the final evaluation runs, outside the epochs.
    overrides = {
        "model": {"dim": 20},
        "distill": {"method": method},
        "train": {"epochs": epochs, "eval_every": 10_000, "threads": 1},
    }
    metrics = distill_run(teacher.path, student_config(teacher, overrides), out)
    wall = [r["seconds"] for r in metrics["history"]]
    cpu = [r["cpu_seconds"] for r in metrics["history"]]
    return {
        "method": method,
        "epochs": len(cpu),
        "cpu_first": cpu[0],
        "cpu_median": statistics.median(cpu),
        "cpu_mean": statistics.mean(cpu),
        "wall_median": statistics.median(wall),
        "per_epoch": {"cpu": cpu, "wall": wall},
    }


def _markdown(payload: dict, args) -> str:
    rows = {r["method"]: r for r in payload["rows"]}
    base = rows.get("none", {}).get("cpu_median")
    d = payload["data"]
    lines = [
        "# Distillation speed at CiteULike's sizes",
        "",
        f"Command: `.venv/bin/python benchmarks/distill_speed.py --epochs {args.epochs} "
        f"--quick-epochs {args.quick_epochs}`",
        "",
        f"Synthetic data: {d['users']:,} users, {d['items']:,} items, {d['train']:,} training "
        "interactions (leave-one-out). BPR-MF teacher dim 200, student dim 20, batch 1024, one "
        f"negative, one thread, torch {payload['torch']}. CPU seconds per epoch (sampling and "
        "all batches; the final evaluation excluded).",
        "",
        "| method | epochs timed | first epoch s | median s | mean s | × student-only (median) "
        "| reference s | reference / ours (mean) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for method, r in rows.items():
        ref = payload["reference_s"].get(method)
        ratio = f"{r['cpu_median'] / base:.2f}" if base else "—"
        speedup = f"{ref / r['cpu_mean']:.1f}×" if ref else "—"
        lines.append(
            f"| {method} | {r['epochs']} | {r['cpu_first']:.2f} | {r['cpu_median']:.2f} | "
            f"{r['cpu_mean']:.2f} | {ratio} | {ref if ref else '—'} | {speedup} |"
        )
    lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
