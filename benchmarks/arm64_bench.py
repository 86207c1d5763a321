"""x86 against emulated AArch64 for the ML-100K BPR-MF teacher and its HTD students.

Takes the teacher (dim 64) and the HTD students (seed 0) that the distillation report leaves
under runs/distill_ml100k/ (those that exist), exports each fp32 and int8 (dynamic, `--target
arm64`) with training items excluded into a temporary folder, and measures every export with
`edgerec bench` on this host's CPU and on `--device arm64` (qemu, the aarch64 onnxruntime):
batch 1 and 64, one thread. Then asks both runtimes for every user's top 10 and compares them.

    .venv/bin/python benchmarks/arm64_bench.py [--warmup 5] [--runs 50]

Writes benchmarks/arm64.json (every row, both machines, the agreement) and benchmarks/arm64.md.
The exports hold MovieLens interactions (their evalset), so they stay in the temporary folder.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from edgerec.bench.config import BenchConfig
from edgerec.bench.machine import machine_info
from edgerec.bench.run import run_bench
from edgerec.export.config import ExportConfig, QuantConfig
from edgerec.export.job import export_run
from edgerec.runtime.bundle import Bundle
from edgerec.targets import arm64

ROOT = Path(__file__).resolve().parents[1]
RUNS = ROOT / "runs" / "distill_ml100k"
OUT = ROOT / "benchmarks"
MODELS = {"teacher-bpr": "teacher-d64", "bpr-d16-htd-s0": "htd-d16", "bpr-d6-htd-s0": "htd-d6"}
K = 10
# Exports keep their top 50 with training items excluded: what a device serves, and enough for
# Recall@10 on every user (edgerec.runtime.bench.bundle_accuracy).
EXPORT_K = 50


def export_all(work: Path) -> dict[str, Path]:
    exports = {}
    for run, short in MODELS.items():
        if not (RUNS / run / "metrics.json").is_file():
            print(f"skipping {run}: not found under {RUNS}", flush=True)
            continue
        for precision, quant in (("fp32", None), ("int8", QuantConfig(preset="arm64"))):
            name = f"{short}-{precision}"
            config = ExportConfig(k=EXPORT_K, exclude_seen=True, quant=quant)
            export_run(RUNS / run, work / name, config)
            exports[name] = work / name
            print(f"exported {name}", flush=True)
    return exports


def bench(device: str, exports: dict[str, Path], args) -> list[dict]:
    config = BenchConfig(
        exports=tuple(str(p) for p in exports.values()),
        device=device,
        batches=(1, 64),
        threads=(1,),
        warmup=args.warmup,
        runs=args.runs,
        k=K,
    )
    started = time.monotonic()
    rows = run_bench(config).rows
    print(f"bench on {device}: {time.monotonic() - started:.0f} s", flush=True)
    for row in rows:
        row.pop("path")  # a temporary folder
    return rows


def agreement(env: arm64.Arm64Env, path: Path) -> dict:
    """Every user's top K from the emulated runtime against this host's, for one export."""
    bundle = Bundle.open(path)
    items, scores = bundle.recommend(np.arange(bundle.n_users))  # [n_users, EXPORT_K]
    users = [arg for user in bundle.users for arg in ("--user", user)]
    result = arm64.run_python(
        env,
        ["-m", "edgerec.runtime", "recommend", str(path), *users, "--k", str(K), "--json"],
        extra_path=[ROOT],
        timeout=600,
    )
    if result.returncode != 0:
        raise SystemExit(f"emulated recommend failed: {result.stderr.strip()[-300:]}")
    served = {r["user"]: r for r in json.loads(result.stdout)["recommendations"]}

    identical, overlap, gaps = [], [], []
    for index, user in enumerate(bundle.users):
        host = bundle.item_ids(items[index, :K])
        arm = served[user]["items"]
        identical.append(arm == host)
        overlap.append(len(set(arm) & set(host)) / K)
        if arm == host:
            gaps.append(np.abs(np.array(served[user]["scores"]) - scores[index, :K]).max())
    return {
        "users": bundle.n_users,
        "identical": float(np.mean(identical)),
        f"overlap@{K}": float(np.mean(overlap)),
        "max_abs_score_diff": float(max(gaps)) if gaps else None,
    }


def markdown(payload: dict) -> str:
    host, arm = payload["host"], payload["arm64"]
    by_key = {(r["device"], r["model"], r["batch"]): r for r in payload["rows"]}
    pairs = [
        (r, by_key[("arm64", r["model"], r["batch"])])
        for r in payload["rows"]
        if r["device"] == "cpu" and r["model"] != "floor"
    ]
    first = pairs[0][0]
    lines = [
        "# x86 against emulated AArch64: ML-100K teacher and HTD students",
        "",
        f"Command: `.venv/bin/python {payload['command']}` (one thread; p50 of {first['runs']} "
        f"timed calls after {first['warmup']} warm-up calls).",
        "",
        f"- x86: {host['cpu']} ({', '.join(host['flags'])}), onnxruntime "
        f"{host['versions']['onnxruntime']}.",
        f"- arm64: the aarch64 onnxruntime {arm['onnxruntime']} wheel on Debian's Python "
        f"{arm['python']}, under qemu {payload['arm64_env']['qemu']} emulating a "
        f"{arm['qemu_cpu']} (dot-product instructions offered: {arm['asimddp']}).",
        "- Exports: the BPR-MF teacher (dim 64) and its HTD students (seed 0) of the "
        f"distillation report, fp32 and int8 (dynamic, `--target arm64`), top {EXPORT_K} with "
        "training items excluded.",
        "",
        "**Read the arm64 latencies as what they are: nothing about a real ARM device.** qemu "
        "translates every instruction, so its times measure the translator (and this host), and "
        "it would also run instructions a real core lacks without the SIGILL that core would "
        "raise. What the arm64 columns do show is that the file loads and runs in the aarch64 "
        "onnxruntime, with its own int8 kernels, and what it recommends and scores there.",
        "",
        _memory_note(pairs),
        "",
        "| model | batch | bytes | x86 p50 ms | arm64 (emulated) p50 ms | emulated / x86 "
        f"| x86 +MiB | arm64 +MiB | x86 recall@{K} | arm64 recall@{K} |",
        "|" + "---|" * 10,
    ]
    for r, a in pairs:
        x86_p50, arm_p50 = r["latency_ms"]["p50"], a["latency_ms"]["p50"]
        lines.append(
            f"| {r['model']} | {r['batch']} | {r['model_bytes']:,} | {x86_p50:.4f} | "
            f"{arm_p50:.4f} | {arm_p50 / x86_p50:.1f}× | {_num(r['rss_delta_mb'])} | "
            f"{_num(a['rss_delta_mb'])} | {_num(r[f'recall@{K}'], 4)} | "
            f"{_num(a[f'recall@{K}'], 4)} |"
        )
    floor = [r for r in payload["rows"] if r["model"] == "floor" and r["batch"] == 1]
    floors = {r["device"]: r["latency_ms"]["p50"] for r in floor}
    lines += [
        "",
        f"onnxruntime's floor (an Identity graph, batch 1): x86 {floors['cpu'] * 1000:.1f} µs, "
        f"arm64 emulated {floors['arm64'] * 1000:.1f} µs.",
        "",
        f"## Top-{K} agreement, every user: arm64 against x86",
        "",
        f"| model | users | identical top-{K} lists | overlap@{K} | max abs score diff "
        "(identical lists) |",
        "|---|---|---|---|---|",
    ]
    for name, a in payload["agreement"].items():
        lines.append(
            f"| {name} | {a['users']} | {a['identical'] * 100:.2f}% | "
            f"{a[f'overlap@{K}'] * 100:.2f}% | {_num(a['max_abs_score_diff'])} |"
        )
    lines += [
        "",
        "What agrees here is an observation on these two builds and this host, not a guarantee: "
        "another onnxruntime version or another x86 CPU may take kernels that round apart, which "
        "is why tests/test_arm64_parity.py allows 1e-5 on fp32 scores and judges int8 by its "
        f"recall. This host has {'AVX512-VNNI' if 'avx512_vnni' in host['flags'] else 'no VNNI'}"
        ": without VNNI, x86's U8S8 kernel sums pairs of products in int16 and may saturate on "
        "the full-range weights of the arm64 preset, so there the x86 side is the one to differ.",
        "",
    ]
    return "\n".join(lines)


def _memory_note(pairs: list[tuple[dict, dict]]) -> str:
    """What the memory columns say, from the rows: qemu's offset, and whether the differences
    between models survive it."""
    offsets = [a["rss_delta_mb"] - r["rss_delta_mb"] for r, a in pairs]
    by_model = {}
    for r, a in pairs:
        if r["batch"] == 1:
            by_model[r["model"]] = (r["rss_delta_mb"], a["rss_delta_mb"])
    big, small = (
        max(by_model, key=lambda m: by_model[m][0]),
        min(by_model, key=lambda m: by_model[m][0]),
    )
    return (
        "Memory (`+MiB`: peak resident set over the baseline taken after the imports, in a fresh "
        "process per row) under qemu includes qemu and the code it translates while the session "
        f"is built and run: every arm64 row is {min(offsets):.1f} to {max(offsets):.1f} MiB above "
        f"its x86 row. The differences between models carry over ({big} minus {small} at batch "
        f"1: x86 {by_model[big][0] - by_model[small][0]:.2f} MiB, arm64 "
        f"{by_model[big][1] - by_model[small][1]:.2f} MiB), so compare arm64 rows with each "
        "other, not with x86 ones."
    )


def _num(value, digits=3) -> str:
    if value is None:
        return ""
    return f"{value:.{digits}g}" if digits == 3 else f"{value:.{digits}f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument(
        "--render", action="store_true", help="only rewrite arm64.md from arm64.json"
    )
    args = parser.parse_args()
    if args.render:
        (OUT / "arm64.md").write_text(markdown(json.loads((OUT / "arm64.json").read_text())))
        return

    reason = arm64.unavailable_reason()
    env = arm64.Arm64Env(arm64.default_root())
    if reason or not env.is_ready():
        raise SystemExit(f"no arm64 environment: {reason or 'run `edgerec device setup arm64`'}")

    with tempfile.TemporaryDirectory(prefix="arm64-bench-") as work:
        exports = export_all(Path(work))
        rows = bench("cpu", exports, args) + bench("arm64", exports, args)
        agreements = {name: agreement(env, path) for name, path in exports.items()}

    payload = {
        "command": f"benchmarks/arm64_bench.py --warmup {args.warmup} --runs {args.runs}",
        "host": machine_info(),
        "arm64": arm64.machine_info(env),
        "arm64_env": env.manifest(),
        "agreement": agreements,
        "rows": rows,
    }
    (OUT / "arm64.json").write_text(json.dumps(payload, indent=2) + "\n")
    (OUT / "arm64.md").write_text(markdown(payload))
    print(f"wrote {OUT / 'arm64.json'} and {OUT / 'arm64.md'}")


if __name__ == "__main__":
    main()
