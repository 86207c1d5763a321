"""The inference graph of a trained model, and its export to one self-contained ONNX file.

The graph maps `user` int64 [batch] to `items` int64 [batch, k] and `scores` float32 [batch, k]
(the top k, computed by TopK inside the graph), or with `scores_only` to `scores` float32
[batch, n_items]. The batch dimension is dynamic.

Each family has a scorer that computes [batch, n_items] scores from user indices:

- BPR-MF: one Gather of the user embeddings and one MatMul with the item table, stored
  transposed ([d, n_items]) so the MatMul has a constant right operand with no Transpose node
  before it, the form onnxruntime's quantizers recognise as a weight.
- NeuMF, folded (the default): every item-side quantity is a constant (`NeuMF.item_side()`): the
  GMF item embeddings times the GMF half of the output layer ([n_items, d]) and the item half of
  the first MLP layer plus its bias ([n_items, h1]). A query computes the user side (two Gathers,
  two small MatMuls) and the rest of the tower over [batch, n_items, h1]. Folding saves a query
  the [n_items, d] x [d, h1] product and the [batch, n_items, 2d] concatenation; it costs file
  bytes, because h1 = 2d makes the folded MLP table twice the size of the item embeddings it
  replaces.
- NeuMF, unfolded (`fold=False`): NeuMF's own pairwise forward broadcast over the catalogue,
  the baseline the benchmark measures folding against. Its item side cannot be precomputed by
  onnxruntime's constant folding, because every product mixes a user and an item.

Seen-item exclusion (`exclude_seen`): the training items of every user are a packed bitmask
[n_users, ceil(n_items / 8)] uint8, item j at bit j % 8 of byte j // 8. A query gathers its
users' rows, unpacks them with BitwiseAnd against (1, 2, ..., 128), and gives the set bits -inf
before TopK. It costs n_users * ceil(n_items / 8) bytes, an eighth of a dense bool mask, and a
[batch, n_items] unpack per query. At ML-100K's sizes that is 943 x 211 = 199 kB, more than a
dim-8 BPR student's own tables (84 kB fp32; the mask is bytes already, so int8 leaves it whole),
and about 0.01 ms on a 0.02-0.1 ms batch-1 query (benchmarks/export_bench.py).

Out-of-range users: indices outside [0, n_users) never reach a Gather (which in ONNX would
wrap a negative index round to the end of the table, and fail the whole batch on a large one).
The graph replaces them by 0, computes as usual, and returns items -1 and scores -inf on their
rows, so one bad index neither reads out of bounds nor fails its batch. The torch-free reader
refuses such indices before they reach the graph.

Weights are written into the .onnx file itself, so a bundle is one model file; models over
2 GB are out of scope (see `export_onnx`).
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn.functional import embedding

from edgerec.errors import ExportError
from edgerec.models.base import Recommender
from edgerec.runtime.bundle import INPUT

log = logging.getLogger(__name__)

OUT_OF_RANGE = "items -1 and scores -inf on the rows of users outside [0, n_users)"
# protobuf refuses to serialise a message over 2 GiB.
_PROTOBUF_LIMIT = 2**31 - 1


def output_names(scores_only: bool) -> list[str]:
    return ["scores"] if scores_only else ["items", "scores"]


def seen_bitmask(users: np.ndarray, items: np.ndarray, n_users: int, n_items: int) -> np.ndarray:
    """[n_users, ceil(n_items / 8)] uint8: bit j % 8 of byte j // 8 set when user saw item j."""
    # Limitation: the mask grows with n_users * n_items, not with the interactions, because a
    # fixed row width is what lets one Gather fetch a user's row; 100k users x 100k items would
    # take 1.25 GB, where a CSR of the interactions would be far smaller.
    mask = np.zeros((n_users, (n_items + 7) // 8), dtype=np.uint8)
    bits = np.left_shift(1, items & 7).astype(np.uint8)
    np.bitwise_or.at(mask, (users, items >> 3), bits)
    return mask


class BPRScorer(nn.Module):
    def __init__(self, model: Recommender):
        super().__init__()
        self.register_buffer("user_embedding", model.user_embedding.weight.detach().clone())
        self.register_buffer("item_embedding_t", model.item_embedding.weight.detach().T.clone())

    def forward(self, users: Tensor) -> Tensor:
        return embedding(users, self.user_embedding) @ self.item_embedding_t  # [batch, n_items]


class FoldedNeuMFScorer(nn.Module):
    def __init__(self, model: Recommender):
        super().__init__()
        d = model.config.dim
        first = model.first_layer
        with torch.no_grad():
            gmf_items, mlp_items = model.item_side()  # [n_items, d], [n_items, h1]
            self.register_buffer("gmf_user", model.gmf_user.weight.detach().clone())
            self.register_buffer("mlp_user", model.mlp_user.weight.detach().clone())
            self.register_buffer("gmf_item_t", gmf_items.T.clone())  # [d, n_items]
            self.register_buffer("first_user_t", first.weight[:, :d].T.clone())  # [d, h1]
            self.register_buffer("mlp_item", mlp_items.clone())  # [n_items, h1]
            self.register_buffer("predict_mlp", model.predict.weight[0, d:, None].clone())
            self.register_buffer("predict_bias", model.predict.bias.detach().clone())
        # The tower after its first Linear and ReLU (Dropout, Linear, ReLU, ...), as trained.
        self.tower = model.mlp[3:]

    def forward(self, users: Tensor) -> Tensor:
        gmf = embedding(users, self.gmf_user) @ self.gmf_item_t  # [batch, n_items]
        user_part = embedding(users, self.mlp_user) @ self.first_user_t  # [batch, h1]
        h = torch.relu(user_part[:, None, :] + self.mlp_item)  # [batch, n_items, h1]
        mlp = (self.tower(h) @ self.predict_mlp).squeeze(-1)  # [batch, n_items]
        return gmf + mlp + self.predict_bias


class UnfoldedNeuMFScorer(nn.Module):
    def __init__(self, model: Recommender):
        super().__init__()
        self.model = model

    def forward(self, users: Tensor) -> Tensor:
        m = self.model
        batch, n_items = users.shape[0], m.n_items
        gmf = m.gmf_user(users)[:, None, :] * m.gmf_item.weight  # [batch, n_items, d]
        mlp_in = torch.cat(
            [
                m.mlp_user(users)[:, None, :].expand(batch, n_items, -1),
                m.mlp_item.weight[None].expand(batch, n_items, -1),
            ],
            dim=-1,
        )  # [batch, n_items, 2d]
        out = m.predict(torch.cat([gmf, m.mlp(mlp_in)], dim=-1))  # [batch, n_items, 1]
        return out.squeeze(-1)


def build_scorer(model: Recommender, *, fold: bool = True) -> nn.Module:
    kind = model.config.name
    if kind == "bpr":
        return BPRScorer(model)
    if kind == "ncf":
        return FoldedNeuMFScorer(model) if fold else UnfoldedNeuMFScorer(model)
    raise ExportError(f"model family '{kind}' has no export graph: expected bpr or ncf")


class RecommenderGraph(nn.Module):
    """A scorer wrapped with the range guard, seen-item exclusion and TopK (module docstring)."""

    def __init__(
        self,
        scorer: nn.Module,
        n_users: int,
        n_items: int,
        k: int,
        *,
        scores_only: bool = False,
        seen: np.ndarray | None = None,
    ):
        super().__init__()
        if not scores_only and not 1 <= k <= n_items:
            raise ExportError(f"k={k} is out of range: the catalogue has {n_items} items")
        self.scorer = scorer
        self.n_users, self.n_items, self.k = n_users, n_items, k
        self.scores_only = scores_only
        self.exclude_seen = seen is not None
        if seen is not None:
            self.register_buffer("seen_bitmask", torch.from_numpy(np.ascontiguousarray(seen)))
            self.register_buffer(
                "bit_values", torch.tensor([1 << b for b in range(8)], dtype=torch.uint8)
            )

    def forward(self, user: Tensor):
        valid = (user >= 0) & (user < self.n_users)  # [batch]
        safe = torch.where(valid, user, torch.zeros_like(user))
        scores = self.scorer(safe)  # [batch, n_items]

        if self.exclude_seen:
            rows = torch.index_select(self.seen_bitmask, 0, safe)  # [batch, n_bytes]
            bits = (rows[:, :, None] & self.bit_values) != 0  # [batch, n_bytes, 8]
            seen = bits.flatten(1)[:, : self.n_items]  # [batch, n_items]
            scores = scores.masked_fill(seen, float("-inf"))
        scores = scores.masked_fill(~valid[:, None], float("-inf"))
        if self.scores_only:
            return scores

        top_scores, top_items = torch.topk(scores, self.k, dim=1)  # [batch, k] each
        top_items = torch.where(valid[:, None], top_items, torch.full_like(top_items, -1))
        return top_items, top_scores


def export_onnx(graph: RecommenderGraph, path: Path, *, opset: int) -> None:
    """Export `graph` with torch.onnx's dynamo exporter to one self-contained file."""
    import onnx

    graph = graph.eval()
    example = torch.tensor([0, graph.n_users - 1], dtype=torch.long)
    # The batch must be dynamic; an example of 2 keeps torch.export from specialising 0 or 1.
    batch = torch.export.Dim("batch", min=1)
    with _quiet_exporter(), torch.no_grad():
        program = torch.onnx.export(
            graph,
            (example,),
            dynamo=True,
            input_names=[INPUT],
            output_names=output_names(graph.scores_only),
            dynamic_shapes={INPUT: {0: batch}},
            opset_version=opset,
            external_data=False,
            optimize=True,
            verbose=False,
        )
    proto = program.model_proto
    _strip_node_metadata(proto)

    # Limitation: protobuf caps a message at 2 GiB, so a model over that cannot be one file;
    # bundles do not support external data, and edgerec's students are megabytes.
    size = proto.ByteSize()
    if size > _PROTOBUF_LIMIT:
        raise ExportError(
            f"the model is {size / 2**30:.1f} GiB: an ONNX file holding its weights is capped "
            "at 2 GiB; export a smaller model"
        )
    onnx.save_model(proto, str(path), save_as_external_data=False)
    log.info("exported %s (%d bytes, opset %d)", path, Path(path).stat().st_size, opset)


@contextlib.contextmanager
def _quiet_exporter():
    """Keep the exporter's own chatter out of our output and warnings-as-errors runs."""
    registration = logging.getLogger("torch.onnx._internal.exporter._registration")
    level = registration.level
    # It logs a warning per torchvision operator it cannot register, on every first export.
    registration.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            # torch 2.13's exporter trips pytree's own deprecation of `LeafSpec` checks.
            warnings.filterwarnings("ignore", message=".*LeafSpec.*", category=FutureWarning)
            yield
    finally:
        registration.setLevel(level)


def _strip_node_metadata(proto) -> None:
    # The exporter records each node's Python stack and module path: a third of a small
    # model's bytes, and nothing a runtime reads.
    for node in proto.graph.node:
        del node.metadata_props[:]
    for value in list(proto.graph.value_info) + list(proto.graph.initializer):
        del value.metadata_props[:]
    for value in list(proto.graph.input) + list(proto.graph.output):
        del value.metadata_props[:]
