"""Full-ranking metrics against a brute-force reference written from the definitions."""

import math

import numpy as np
import torch

from edgerec.data.interactions import IdMap, Interactions, SplitDataset
from edgerec.evaluate import evaluate


def _brute_force(scores, train, valid, test, ks):
    """Per user: mask train and valid items, rank by score, count hits one item at a time."""
    n_users, n_items = scores.shape
    out = {f"{m}@{k}": [] for m in ("recall", "ndcg", "hr") for k in ks}
    for u in range(n_users):
        held = set(test.items[test.users == u].tolist())
        if not held:
            continue
        seen = set(train.items[train.users == u].tolist()) | set(
            valid.items[valid.users == u].tolist()
        )
        candidates = [i for i in range(n_items) if i not in seen]
        ranked = sorted(candidates, key=lambda i: -scores[u, i])
        for k in ks:
            top = ranked[:k]
            hits = [1.0 if i in held else 0.0 for i in top]
            dcg = sum(h / math.log2(r + 2) for r, h in enumerate(hits))
            idcg = sum(1 / math.log2(r + 2) for r in range(min(len(held), k)))
            out[f"recall@{k}"].append(sum(hits) / len(held))
            out[f"ndcg@{k}"].append(dcg / idcg)
            out[f"hr@{k}"].append(float(sum(hits) > 0))
    return {name: float(np.mean(v)) for name, v in out.items()}


def _random_dataset(rng, n_users=40, n_items=60):
    parts = {"train": ([], []), "valid": ([], []), "test": ([], [])}
    for u in range(n_users):
        items = rng.permutation(n_items)[: rng.integers(3, 20)]
        cut_a, cut_b = len(items) - 2, len(items) - 1
        sizes = {"train": items[:cut_a], "valid": items[cut_a:cut_b], "test": items[cut_b:]}
        if u % 7 == 0:
            sizes = {"train": items, "valid": items[:0], "test": items[:0]}  # no held-out items
        for name, chosen in sizes.items():
            parts[name][0].extend([u] * len(chosen))
            parts[name][1].extend(chosen.tolist())
    made = {
        k: Interactions(np.array(u, np.int64), np.array(i, np.int64)) for k, (u, i) in parts.items()
    }
    return SplitDataset(
        "random",
        n_users,
        n_items,
        made["train"],
        made["valid"],
        made["test"],
        IdMap.identity(n_users, n_items),
    )


def test_metrics_match_brute_force_on_random_data():
    rng = np.random.default_rng(0)
    dataset = _random_dataset(rng)
    scores = rng.standard_normal((dataset.n_users, dataset.n_items)).astype(np.float32)
    ks = (1, 5, 10, 50)

    ours = evaluate(
        lambda users: torch.from_numpy(scores[users.numpy()]), dataset, "test", ks=ks, batch_size=7
    )  # a batch size that does not divide the users
    reference = _brute_force(scores, dataset.train, dataset.valid, dataset.test, ks)
    for name, value in reference.items():
        assert math.isclose(ours[name], value, rel_tol=1e-9, abs_tol=1e-12), name


def test_perfect_scores_give_perfect_metrics():
    rng = np.random.default_rng(1)
    dataset = _random_dataset(rng)
    scores = np.zeros((dataset.n_users, dataset.n_items), np.float32)
    scores[dataset.test.users, dataset.test.items] = 1.0
    ours = evaluate(lambda users: torch.from_numpy(scores[users.numpy()]), dataset, "test")
    assert ours["recall@10"] == 1.0 and ours["ndcg@10"] == 1.0 and ours["hr@10"] == 1.0


def test_training_items_are_never_counted_as_hits():
    rng = np.random.default_rng(2)
    dataset = _random_dataset(rng)
    # Scores that put every training item first: with masking, they must not crowd out test items.
    scores = np.zeros((dataset.n_users, dataset.n_items), np.float32)
    scores[dataset.train.users, dataset.train.items] = 10.0
    scores[dataset.test.users, dataset.test.items] = 1.0
    ours = evaluate(lambda users: torch.from_numpy(scores[users.numpy()]), dataset, "test", ks=(1,))
    assert ours["hr@1"] == 1.0
