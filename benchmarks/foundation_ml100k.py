"""Teachers on real ML-100K: accuracy under RecBole's protocol and the time per training epoch.

Trains BPR-MF (dim 64) and NeuMF (embedding 64, MLP 128-64-32, 4 negatives) from the presets in
configs/, on the 8:1:1 per-user ratio split with full-ranking evaluation, and records test
metrics and the median seconds per training epoch (sampling + all batches, evaluation excluded).

    .venv/bin/python benchmarks/foundation_ml100k.py [--threads 2] [--out PATH_WITHOUT_SUFFIX]

MovieLens is read from ../shared/data/ml-100k (never copied here). Writes OUT.json and OUT.md.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
from pathlib import Path

import torch

from edgerec.cli.options import resolve_config
from edgerec.train.job import train_run

ROOT = Path(__file__).resolve().parents[1]
PRESETS = {"bpr": ROOT / "configs/ml100k-bpr.toml", "ncf": ROOT / "configs/ml100k-ncf.toml"}
# RecBole's figures under the same protocol, as quoted in the foundation issue.
RECBOLE = {"bpr": {"recall@10": 0.2368, "epoch_s": 0.5}, "ncf": {"recall@10": 0.24, "epoch_s": 4.7}}
GOALS = {"bpr": {"recall@10": 0.22, "epoch_s": 0.25}, "ncf": {"recall@10": 0.22, "epoch_s": 1.5}}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "foundation_ml100k")
    args = parser.parse_args()

    rows = []
    for name, preset in PRESETS.items():
        config = resolve_config(preset, {"train": {"threads": args.threads}})
        with tempfile.TemporaryDirectory() as tmp:
            metrics = train_run(config, Path(tmp) / "run")
        epoch_s = statistics.median(r["seconds"] for r in metrics["history"])
        rows.append(
            {
                "model": name,
                "params": metrics["params"],
                "epochs": metrics["epochs"],
                "best_epoch": metrics["best_epoch"],
                "epoch_s_median": epoch_s,
                "test": metrics["test"],
                "goal": GOALS[name],
                "recbole": RECBOLE[name],
            }
        )
        print(f"{name}: recall@10 {metrics['test']['recall@10']:.4f}  epoch {epoch_s:.3f}s")

    env = {
        "cpu": platform.processor() or platform.machine(),
        "threads": args.threads,
        "torch": torch.__version__,
    }
    args.out.with_suffix(".json").write_text(
        json.dumps({"env": env, "rows": rows}, indent=2) + "\n"
    )
    args.out.with_suffix(".md").write_text(_markdown(rows, env))


def _markdown(rows, env) -> str:
    lines = [
        "# Teachers on ML-100K (8:1:1 ratio split, full ranking)",
        "",
        "Command: `.venv/bin/python benchmarks/foundation_ml100k.py "
        f"--threads {env['threads']}` (torch {env['torch']}, {env['threads']} threads).",
        "",
        "| model | params | epochs (best) | test R@10 | goal | RecBole | test N@10 | R@20 | R@50 "
        "| epoch s (median) | goal | RecBole |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        t = r["test"]
        lines.append(
            f"| {r['model']} | {r['params']:,} | {r['epochs']} ({r['best_epoch']}) | "
            f"{t['recall@10']:.4f} | ≥ {r['goal']['recall@10']} | {r['recbole']['recall@10']} | "
            f"{t['ndcg@10']:.4f} | {t['recall@20']:.4f} | {t['recall@50']:.4f} | "
            f"{r['epoch_s_median']:.3f} | ≤ {r['goal']['epoch_s']} | {r['recbole']['epoch_s']} |"
        )
    lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
