"""Reproduction report for Topology Distillation on real ML-100K.

For each model family (BPR-MF, NeuMF) a teacher is trained from its preset in configs/, then
students at about 0.1, 0.25, 0.5 and 1.0 of the teacher's parameters are distilled with each
method (none, DE, FTD, HTD) and several seeds. Test Recall and NDCG at 10/20/50 are reported as
mean ± std over the seeds, beside the median seconds per training epoch.

    .venv/bin/python benchmarks/distill_ml100k.py [--models bpr,ncf] [--seeds 0,1,2] [--workers 2]

Each finished cell is appended to OUT/cells.jsonl, and a rerun skips the cells already there, so
an interrupted report resumes. Writes benchmarks/distill_ml100k.{md,json}. MovieLens is read
from ../shared/data/ml-100k and never copied.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import statistics
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PRESETS = {"bpr": ROOT / "configs/ml100k-bpr.toml", "ncf": ROOT / "configs/ml100k-ncf.toml"}
# Student embedding sizes for a dim-64 teacher: parameters scale with dim (embedding tables
# dominate both families), so these are ~0.1, 0.25, 0.5 and 1.0 of the teacher.
DIMS = (6, 16, 32, 64)
METHODS = ("none", "de", "ftd", "htd")
METRICS = [f"{m}@{k}" for m in ("recall", "ndcg") for k in (10, 20, 50)]
# Students train with their teacher's settings, except that NCF students stop at 40 epochs
# instead of 100: the NCF teacher's best epoch was 25, and the grid must fit in under an hour
# on two shared cores.
STUDENT_TRAIN = {"bpr": {}, "ncf": {"epochs": 40}}


def teacher_dir(work: Path, model: str) -> Path:
    return work / f"teacher-{model}"


def ensure_teacher(work: Path, model: str) -> Path:
    from edgerec.cli.options import resolve_config
    from edgerec.train.job import train_run

    out = teacher_dir(work, model)
    if not (out / "metrics.json").exists():
        config = resolve_config(PRESETS[model], {"train": {"threads": 2}})
        train_run(config, out, resume=out.exists())
    return out


def run_cell(work: Path, model: str, dim: int, method: str, seed: int) -> dict:
    import shutil

    from edgerec.distill.job import distill_run, student_config
    from edgerec.train.rundir import open_run

    teacher = open_run(teacher_dir(work, model))
    overrides = {
        "model": {"dim": dim},
        "distill": {"method": method},
        "train": {**STUDENT_TRAIN[model], "seed": seed, "threads": 1},
    }
    config = student_config(teacher, overrides)
    out = work / f"{model}-d{dim}-{method}-s{seed}"
    shutil.rmtree(out, ignore_errors=True)  # a half-finished cell is never trusted
    metrics = distill_run(teacher.path, config, out)
    return {
        "model": model,
        "dim": dim,
        "method": method,
        "seed": seed,
        "params": metrics["params"],
        "compression": metrics["compression"],
        "epochs": metrics["epochs"],
        "best_epoch": metrics["best_epoch"],
        "epoch_s": statistics.median(r["cpu_seconds"] for r in metrics["history"]),
        "test": {k: metrics["test"][k] for k in METRICS},
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", default="bpr,ncf")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--dims", default=",".join(map(str, DIMS)))
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "distill_ml100k")
    args = parser.parse_args()
    models = args.models.split(",")
    seeds = [int(s) for s in args.seeds.split(",")]
    dims = [int(d) for d in args.dims.split(",")]
    methods = args.methods.split(",")
    args.work.mkdir(parents=True, exist_ok=True)
    cells_file = args.work / "cells.jsonl"

    done = _read_cells(cells_file)
    for model in models:
        ensure_teacher(args.work, model)
    todo = [
        (m, d, me, s)
        for m in models
        for d in dims
        for me in methods
        for s in seeds
        if (m, d, me, s) not in done
    ]
    print(f"{len(done)} cells done, {len(todo)} to run")
    # Spawned, not forked: the teacher may just have trained in this process, and a child
    # forked from a process whose OpenMP pool is running deadlocks on its first parallel op.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=args.workers, mp_context=context) as pool:
        futures = {pool.submit(run_cell, args.work, *cell): cell for cell in todo}
        for future in as_completed(futures):
            row = future.result()
            with cells_file.open("a") as f:
                f.write(json.dumps(row) + "\n")
            print(
                f"{row['model']} d{row['dim']} {row['method']} s{row['seed']}: "
                f"R@20 {row['test']['recall@20']:.4f} epoch {row['epoch_s']:.2f}s",
                flush=True,
            )

    write_report(args.work, models)


def _read_cells(path: Path) -> dict:
    if not path.exists():
        return {}
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return {(r["model"], r["dim"], r["method"], r["seed"]): r for r in rows}


def write_report(work: Path, models: list[str]) -> None:
    from edgerec.train.rundir import open_run

    cells = list(_read_cells(work / "cells.jsonl").values())
    # Every family with results so far, not only this call's: a rerun for one family keeps
    # the other's section.
    models = sorted({c["model"] for c in cells} | set(models))
    teachers = {}
    for model in models:
        run = open_run(teacher_dir(work, model))
        teachers[model] = {
            "params": run.metrics["params"],
            "dim": run.config.model.dim,
            "test": {k: run.metrics["test"][k] for k in METRICS},
            "epoch_s": run.metrics.get("epoch_seconds_median"),
        }
    groups: dict = {}
    for c in cells:
        groups.setdefault((c["model"], c["dim"], c["method"]), []).append(c)
    summary = []
    for (model, dim, method), rows in sorted(groups.items()):
        entry = {
            "model": model,
            "dim": dim,
            "method": method,
            "seeds": len(rows),
            "params": rows[0]["params"],
            "compression": rows[0]["compression"],
            "epoch_s": statistics.median(r["epoch_s"] for r in rows),
        }
        for k in METRICS:
            values = [r["test"][k] for r in rows]
            entry[k] = {
                "mean": statistics.mean(values),
                "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            }
        summary.append(entry)
    payload = {"teachers": teachers, "students": summary, "cells": cells}
    (ROOT / "benchmarks" / "distill_ml100k.json").write_text(json.dumps(payload, indent=2) + "\n")
    (ROOT / "benchmarks" / "distill_ml100k.md").write_text(_markdown(teachers, summary))


def _markdown(teachers: dict, summary: list[dict]) -> str:
    order = {m: i for i, m in enumerate(METHODS)}
    lines = [
        "# Topology distillation on ML-100K",
        "",
        "Command: `.venv/bin/python benchmarks/distill_ml100k.py` (8:1:1 ratio split, full "
        "ranking, test split, mean ± std over seeds; model selection on validation).",
        "",
        "Students train with their teacher's settings (its preset in configs/: epochs, lr, "
        f"batch, early stopping) with these overrides: {STUDENT_TRAIN}; one thread each, two "
        "cells at a time; `epoch s` is the median CPU seconds per training epoch.",
        "",
    ]
    for model, t in teachers.items():
        lines += [
            f"## {model}: teacher dim {t['dim']}, {t['params']:,} parameters",
            "",
            "| student | method | params | × smaller | " + " | ".join(METRICS) + " | epoch s |",
            "|" + "---|" * (len(METRICS) + 5),
            "| teacher | — | {:,} | 1.0 | ".format(t["params"])
            + " | ".join(f"{t['test'][k]:.4f}" for k in METRICS)
            + f" | {t['epoch_s'] or 0:.3f} |",
        ]
        rows = sorted(
            (s for s in summary if s["model"] == model),
            key=lambda s: (s["dim"], order[s["method"]]),
        )
        for s in rows:
            cells = " | ".join(f"{s[k]['mean']:.4f} ± {s[k]['std']:.4f}" for k in METRICS)
            lines.append(
                f"| dim {s['dim']} | {s['method']} | {s['params']:,} | "
                f"{s['compression']:.1f} | {cells} | {s['epoch_s']:.3f} |"
            )
        lines.append("")
    lines += [
        "## Against the paper",
        "",
        "The paper (CiteULike, BPR-MF teacher dim 200) finds HTD clearly best when the student is "
        "much smaller than the teacher, with FTD catching up at half the size. Here, for BPR-MF, "
        "FTD is the best method at every size and HTD is level with the student-only baseline "
        "(within the seed spread) at 1/10.7 and 1/4 of the teacher; DE helps only at full size. "
        "For NeuMF both topology methods lift the dim-6 student far above student-only, whose "
        "seeds scatter widely, with FTD still ahead of HTD; HTD is best at half size. "
        "`distill_ablation.md` retrains the BPR-MF dim-6 HTD student under a tenfold lambda, "
        "the paper's batch of 1024, mean-reduced losses, the reference's fixed-epoch protocol "
        "and 10 groups instead of 30: none lifts it. What remains different is the setting "
        "(ML-100K is 60 times denser with 15 times fewer items, a dim-64 teacher, a ratio "
        "split), which this report cannot vary with the data at hand.",
        "",
        "The teachers' `epoch s` is the wall time of their own training run, which shared the "
        "machine with other jobs; `foundation_ml100k.md` has the clean figures.",
        "",
        "Seeds vary the negative sampling and the batch order (numpy) and, since the fix in "
        "`edgerec.train.job` that seeds torch before building a model, the initial weights too; "
        "the BPR-MF cells above were trained before that fix, each worker drawing its students' "
        "initial weights from torch's generator in whatever state its previous cells left it.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
