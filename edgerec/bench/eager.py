"""The eager PyTorch reference of `edgerec bench --against-torch`: the run an export came from,
computing what the export's graph computes, timed by the same harness on the same users.

A query is `model.score_all(users)`, then, as the export does, the user's training items set to
-inf when the export excludes seen items (a dense [n_users, n_items] bool mask, eager PyTorch's
natural form of it) and `torch.topk` when the export returns a top k. Calls run under
`torch.inference_mode()`, entered once around the timed loop, with `torch.set_num_threads` set
to the row's thread count.

Memory is measured as for onnxruntime, in a fresh interpreter
(`python -m edgerec.bench.eager memory ...`): baseline once torch and numpy are imported and
the run's data is read, peak after the model is loaded and called.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np

from edgerec.runtime import bench as core
from edgerec.runtime.bundle import Bundle
from edgerec.runtime.metrics import CSR, rank_and_score

log = logging.getLogger(__name__)

RUNTIME = "torch"


class EagerRecommender:
    """A run's model as the bundle's graph computes it: users [batch] -> top k or scores."""

    def __init__(self, model, *, k: int, scores_only: bool, seen=None):
        self.model, self.k, self.scores_only, self.seen = model, k, scores_only, seen

    @classmethod
    def load(cls, run, manifest: Mapping, train_pairs: np.ndarray | None) -> EagerRecommender:
        """From a run directory; `train_pairs` [n, 2] (user, item) when the export masks seen."""
        import torch

        seen = None
        if manifest.get("exclude_seen"):
            seen = torch.zeros(manifest["n_users"], manifest["n_items"], dtype=torch.bool)
            seen[torch.from_numpy(train_pairs[:, 0]), torch.from_numpy(train_pairs[:, 1])] = True
        return cls(
            run.load_model(),
            k=int(manifest["k"]),
            scores_only=manifest["outputs"] == "scores",
            seen=seen,
        )

    def __call__(self, users):
        import torch

        scores = self.model.score_all(users)  # [batch, n_items]
        if self.seen is not None:
            scores = scores.masked_fill(self.seen[users], float("-inf"))
        if self.scores_only:
            return scores
        return torch.topk(scores, self.k, dim=1)  # [batch, k] values and indices


def train_pairs(dataset) -> np.ndarray:
    return np.stack([dataset.train.users, dataset.train.items], axis=1).astype(np.int64)


def eager_rows(
    bundle: Bundle,
    run,
    settings: core.Settings,
    *,
    label: str,
    evalset: tuple[CSR, CSR] | None,
    pairs: np.ndarray | None,
    floors: Mapping,
) -> Iterator[dict]:
    """Rows of the run's eager model, one per (batch, threads), as `core.bench_bundle` makes."""
    import torch

    start = time.perf_counter_ns()
    reference = EagerRecommender.load(run, bundle.manifest, pairs)
    load_ms = (time.perf_counter_ns() - start) / 1e6
    accuracy = eager_accuracy(reference.model, evalset, bundle.n_items, settings.k)
    model_bytes = (Path(run.path) / "model.pt").stat().st_size

    previous = torch.get_num_threads()
    try:
        for threads in settings.threads:
            # Limitation: inter-op threads stay torch's default, because torch allows setting
            # them only once per process, before any parallel work.
            torch.set_num_threads(threads)
            for batch in settings.batches:
                users = [
                    torch.from_numpy(u)
                    for u in core.user_batches(bundle.n_users, batch, settings.runs, settings.seed)
                ]
                with torch.inference_mode():
                    timing = core.time_calls(
                        reference, users, warmup=settings.warmup, runs=settings.runs
                    )
                memory = None
                if settings.memory:
                    memory = eager_memory(run.path, bundle.path, batch, threads)
                yield core.row(
                    model=label,
                    path=str(run.path),
                    runtime=RUNTIME,
                    precision="fp32",
                    batch=batch,
                    threads=threads,
                    settings=settings,
                    timing=timing,
                    session_ms=load_ms,
                    memory=memory,
                    model_bytes=model_bytes,
                    accuracy=accuracy,
                    floor=floors.get((batch, threads)),
                )
    finally:
        torch.set_num_threads(previous)


def eager_accuracy(model, evalset, n_items: int, k: int) -> core.Accuracy:
    """Recall@k and NDCG@k of the eager model by the same evaluator as the export's."""
    import torch

    if evalset is None:
        return core.Accuracy(None, None, "no evalset")

    def score_all(users: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return model.score_all(torch.from_numpy(users)).float().numpy()  # [batch, n_items]

    metrics = rank_and_score(score_all, *evalset, n_items, (k,))
    return core.Accuracy(metrics[f"recall@{k}"], metrics[f"ndcg@{k}"])


def eager_memory(run_dir: Path, bundle_dir: Path, batch: int, threads: int) -> core.Memory:
    """Peak RSS of a fresh interpreter that loads the eager model and calls it."""
    command = [
        sys.executable,
        "-m",
        "edgerec.bench.eager",
        "memory",
        str(run_dir),
        str(bundle_dir),
        "--batch",
        str(batch),
        "--threads",
        str(threads),
    ]
    return core.child_memory(command, f"eager {run_dir}")


def _memory_child(args: argparse.Namespace) -> int:
    import torch

    from edgerec.train.rundir import open_run

    torch.set_num_threads(args.threads)
    run, bundle = open_run(Path(args.run)), core.open_bundle(Path(args.bundle))
    # The data are the evaluation's input, not the model's cost: read before the baseline.
    pairs = train_pairs(run.load_dataset()) if bundle.manifest.get("exclude_seen") else None
    users = [
        torch.from_numpy(u)
        for u in core.user_batches(bundle.n_users, args.batch, core.MEMORY_CALLS, args.seed)
    ]

    baseline = core.baseline_rss_mb()
    reference = EagerRecommender.load(run, bundle.manifest, pairs)
    with torch.inference_mode():
        for u in users:
            reference(u)
    sys.stdout.write(json.dumps({"baseline_mb": baseline, "peak_mb": core.peak_rss_mb()}) + "\n")
    return 0


def main(argv=None) -> int:
    from edgerec.errors import EdgerecError

    parser = argparse.ArgumentParser(prog="python -m edgerec.bench.eager")
    modes = parser.add_subparsers(dest="mode", required=True)
    memory = modes.add_parser("memory", help="(internal) peak RSS of the eager model, as JSON")
    memory.add_argument("run")
    memory.add_argument("bundle")
    memory.add_argument("--batch", type=int, required=True)
    memory.add_argument("--threads", type=int, required=True)
    memory.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        return _memory_child(args)
    except EdgerecError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2


if __name__ == "__main__":
    sys.exit(main())
