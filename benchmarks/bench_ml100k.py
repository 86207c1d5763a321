"""Exports and benchmarks of the ML-100K teachers and students of the distillation report.

Takes the BPR-MF and NeuMF teachers (dim 64) and their HTD students (seed 0) from the
distillation report's run directories (benchmarks/distill_ml100k.py writes them under
runs/distill_ml100k/), exports each fp32 and int8 (dynamic, x86-avx2 preset; and weight-only for
the smallest student), and runs `edgerec bench` on them: batch 1 and 64, 1 and 2 threads, beside
eager PyTorch. Then checks the goals of the benchmark issue, per family, on the rows of that one
run:

- the int8 student at about a tenth of the teacher's size answers a batch-1, one-thread query in
  at most 6x ONNX Runtime's floor,
- at least 20x faster than the fp32 teacher in eager PyTorch,
- with its Recall@10 within 1% (relative) of its own fp32 export.

    .venv/bin/python benchmarks/bench_ml100k.py [--runs 300]

Writes benchmarks/bench_ml100k/{bench.json,bench.csv,config.json,export.json,README.md}.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from edgerec.bench.config import BenchConfig
from edgerec.bench.report import write_report
from edgerec.bench.run import run_bench
from edgerec.export.config import ExportConfig, QuantConfig
from edgerec.export.job import export_run

ROOT = Path(__file__).resolve().parents[1]
RUNS = ROOT / "runs" / "distill_ml100k"
OUT = ROOT / "benchmarks" / "bench_ml100k"
FAMILIES = ("bpr", "ncf")
DIMS = (6, 16, 32)  # dim 6 of a dim-64 teacher: about a tenth of its parameters


def exports_to_make() -> list[tuple[str, str, ExportConfig]]:
    int8 = ExportConfig(quant=QuantConfig(mode="dynamic"))
    todo = []
    for family in FAMILIES:
        if not (RUNS / f"teacher-{family}" / "metrics.json").exists():
            continue
        todo.append((f"teacher-{family}", f"{family}-teacher-fp32", ExportConfig()))
        for dim in DIMS:
            student = f"{family}-d{dim}-htd-s0"
            if (RUNS / student / "metrics.json").exists():
                todo.append((student, f"{family}-d{dim}-htd-fp32", ExportConfig()))
                todo.append((student, f"{family}-d{dim}-htd-int8", int8))
        if (RUNS / f"{family}-d6-htd-s0" / "metrics.json").exists():
            weights = ExportConfig(quant=QuantConfig(mode="weights-only"))
            todo.append((f"{family}-d6-htd-s0", f"{family}-d6-htd-int8w", weights))
    return todo


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "bench_ml100k")
    args = parser.parse_args()

    shutil.rmtree(args.work, ignore_errors=True)
    manifests = {}
    for run, name, config in exports_to_make():
        manifests[name] = export_run(RUNS / run, args.work / name, config)
        print(f"exported {name}: {manifests[name]['file']['bytes']:,} bytes", flush=True)

    config = BenchConfig(
        exports=tuple(str(args.work / n) for n in manifests),
        batches=(1, 64),
        threads=(1, 2),
        runs=args.runs,
        warmup=20,
        against_torch=True,
    )
    result = run_bench(config)
    OUT.mkdir(parents=True, exist_ok=True)
    write_report(OUT, result)
    summary = {
        n: {"bytes": m["file"]["bytes"], "validation": m["validation"]}
        for n, m in manifests.items()
    }
    (OUT / "export.json").write_text(json.dumps(summary, indent=2) + "\n")
    (OUT / "README.md").write_text(markdown(result.rows, manifests, args))


def _find(rows, model, runtime="onnxruntime", batch=1, threads=1):
    for r in rows:
        if (r["model"], r["runtime"], r["batch"], r["threads"]) == (model, runtime, batch, threads):
            return r
    return None


def markdown(rows: list[dict], manifests: dict, args) -> str:
    lines = [
        "# Benchmarks of the ML-100K teacher and students",
        "",
        f"Command: `.venv/bin/python benchmarks/bench_ml100k.py --runs {args.runs}` (one run: "
        "every ratio below compares rows measured side by side in it). Latencies are medians "
        "(p50) of per-call times after 20 warm-up calls.",
        "",
        "| model | runtime | batch | threads | p50 ms | p99 ms | × floor | vs torch | peak RSS MiB "
        "| bytes | recall@10 | ndcg@10 |",
        "|" + "---|" * 12,
    ]
    for r in rows:
        lat = r["latency_ms"]
        lines.append(
            f"| {r['model']} | {r['runtime']} | {r['batch']} | {r['threads']} | {lat['p50']:.4f} | "
            f"{lat['p99']:.4f} | {_num(r.get('x_floor'))} | {_num(r.get('vs_torch'))} | "
            f"{_num(r.get('peak_rss_mb'))} | {_int(r.get('model_bytes'))} | "
            f"{_num(r.get('recall@10'), 4)} | {_num(r.get('ndcg@10'), 4)} |"
        )
    lines += ["", "## Goals (batch 1, one thread)", ""]
    for family in FAMILIES:
        lines += _goals(rows, family)
    lines.append("")
    return "\n".join(lines)


def _goals(rows: list[dict], family: str) -> list[str]:
    small, small_fp32 = _find(rows, f"{family}-d6-htd-int8"), _find(rows, f"{family}-d6-htd-fp32")
    floor = _find(rows, "floor")
    teacher_torch = _find(rows, f"{family}-teacher-fp32", runtime="torch")
    if not (small and floor and teacher_torch and small_fp32):
        return [f"- {family}: the teacher or the d6 student is missing from this run."]
    p50 = small["latency_ms"]["p50"]
    x_floor = p50 / floor["latency_ms"]["p50"]
    vs_teacher = teacher_torch["latency_ms"]["p50"] / p50
    rel = abs(small["recall@10"] - small_fp32["recall@10"]) / small_fp32["recall@10"]
    return [
        f"- {family}: int8 student d6 (HTD) p50 {p50 * 1000:.1f} µs = **{x_floor:.2f}× the "
        f"floor** ({floor['latency_ms']['p50'] * 1000:.2f} µs); goal ≤ 6×: "
        f"{'met' if x_floor <= 6 else 'missed'}.",
        f"- {family}: fp32 teacher in eager PyTorch p50 "
        f"{teacher_torch['latency_ms']['p50'] * 1000:.1f} µs = **{vs_teacher:.1f}× the int8 "
        f"student**; goal ≥ 20×: {'met' if vs_teacher >= 20 else 'missed'}.",
        f"- {family}: Recall@10 int8 {small['recall@10']:.4f} vs fp32 "
        f"{small_fp32['recall@10']:.4f}: **{rel * 100:.2f}% relative**; goal ≤ 1%: "
        f"{'met' if rel <= 0.01 else 'missed'}.",
    ]


def _num(value, digits=3):
    return "" if value is None else f"{value:.{digits}g}" if digits == 3 else f"{value:.{digits}f}"


def _int(value):
    return "" if value is None else f"{value:,}"


if __name__ == "__main__":
    main()
