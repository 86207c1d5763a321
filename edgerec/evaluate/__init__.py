"""Full-ranking metrics (Recall, NDCG, HR at K) over a split, batched."""

from edgerec.evaluate.metrics import DEFAULT_KS, evaluate, metric_names, rank_and_score

__all__ = ["DEFAULT_KS", "evaluate", "metric_names", "rank_and_score"]
