"""Full-ranking metrics (Recall, NDCG, HR at K) of a model over a split, batched."""

from edgerec.evaluate.metrics import evaluate, split_csr
from edgerec.runtime.metrics import DEFAULT_KS, metric_names

__all__ = ["DEFAULT_KS", "evaluate", "metric_names", "split_csr"]
