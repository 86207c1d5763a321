"""The training loop shared by teachers and students.

One epoch: negatives are redrawn for every training interaction (never a training positive),
the interactions are shuffled and cut into batches, and each batch takes one Adam step on the
model's base loss (BPR for BPR-MF, binary cross-entropy for NCF) plus, for a student, the
distillation loss of its `Distiller`. Validation picks the best epoch (early stopping) and the
test split is scored once, at the end, with the selected model.

Everything random is drawn from one numpy generator and torch's global generator, both seeded
from the config and both saved in each epoch's checkpoint, so `resume=True` after an interruption
continues exactly as an unbroken run would have.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from edgerec import atomic
from edgerec.data.interactions import SplitDataset
from edgerec.evaluate import evaluate
from edgerec.models.base import Recommender
from edgerec.train.config import TrainConfig
from edgerec.train.sampling import NegativeSampler

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.pt"


class Distiller(Protocol):
    """What the loop needs of a distillation method (see `edgerec.distill.distiller`)."""

    def parameters(self): ...

    def on_epoch_start(self, epoch: int, n_epochs: int) -> None: ...

    def loss(
        self, users: Tensor, items: Tensor, user_reps: Tensor, item_reps: Tensor
    ) -> Tensor: ...

    def state_dict(self) -> dict: ...

    def load_state_dict(self, state: dict) -> None: ...


@dataclass
class TrainResult:
    model: Recommender
    valid: dict[str, float]
    test: dict[str, float]
    epochs: int
    best_epoch: int
    seconds: float
    epoch_seconds: list[float] = field(default_factory=list)
    history: list[dict] = field(default_factory=list)


EpochCallback = Callable[[dict], None]


def base_loss(
    model: Recommender, users: Tensor, pos: Tensor, neg: Tensor, reduction: str
) -> Tensor:
    """BPR: -log σ(s_ui − s_uj) per (positive, negative) pair. BCE: positives 1, negatives 0."""
    n_neg = neg.shape[1]
    s_pos = model.score(users, pos)  # [batch]
    s_neg = model.score(users.repeat_interleave(n_neg), neg.reshape(-1)).view(-1, n_neg)
    return pair_loss(model.loss, s_pos, s_neg, reduction)


def pair_loss(kind: str, s_pos: Tensor, s_neg: Tensor, reduction: str) -> Tensor:
    """The base loss from [batch] positive and [batch, n_neg] negative scores."""
    if kind == "bpr":
        losses = -F.logsigmoid(s_pos[:, None] - s_neg)  # [batch, n_neg]
        return losses.sum() if reduction == "sum" else losses.mean()
    logits = torch.cat([s_pos, s_neg.reshape(-1)])
    labels = torch.cat([torch.ones_like(s_pos), torch.zeros(s_neg.numel(), device=s_pos.device)])
    return F.binary_cross_entropy_with_logits(logits, labels, reduction=reduction)


def distilled_loss(
    model: Recommender,
    distiller: Distiller,
    users: Tensor,
    pos: Tensor,
    neg: Tensor,
    reduction: str,
) -> Tensor:
    """Base loss plus distillation, each entity of the batch looked up once.

    The distillation loss needs the representations of the batch's unique users and items; the
    base loss's scores are functions of the same rows. Gathering them from the unique rows
    (instead of looking the embeddings up again) saves a dense embedding gradient per lookup,
    most of what distillation would otherwise add to a step of a small student.
    """
    batch, n_neg = neg.shape
    unique_users, user_row = users.unique(return_inverse=True)
    unique_items, item_row = torch.cat([pos, neg.reshape(-1)]).unique(return_inverse=True)
    user_reps = model.user_representation(unique_users)  # [n_unique_users, d]
    item_reps = model.item_representation(unique_items)  # [n_unique_items, d]

    u = user_reps[user_row]  # [batch, d]
    s_pos = model.score_representations(u, item_reps[item_row[:batch]])
    s_neg = model.score_representations(
        u.repeat_interleave(n_neg, dim=0), item_reps[item_row[batch:]]
    ).view(batch, n_neg)
    loss = pair_loss(model.loss, s_pos, s_neg, reduction)
    return loss + distiller.loss(unique_users, unique_items, user_reps, item_reps)


def fit(
    model: Recommender,
    dataset: SplitDataset,
    config: TrainConfig,
    *,
    run_dir: Path | None = None,
    resume: bool = False,
    distiller: Distiller | None = None,
    on_epoch: EpochCallback | None = None,
    stop_after: int | None = None,
) -> TrainResult:
    """Train `model` on `dataset.train`; `stop_after` ends the call after that many epochs
    (as an interruption would), for resumption."""
    if config.threads:
        torch.set_num_threads(config.threads)
    device = torch.device(config.device)
    model.to(device)
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)

    params = list(model.parameters()) + (list(distiller.parameters()) if distiller else [])
    # The fused kernel updates a parameter in one pass instead of one per Adam operation: on a
    # student the dense update of the embedding tables is most of a step.
    optimizer = torch.optim.Adam(
        params, lr=config.lr, weight_decay=config.weight_decay, fused=device.type in ("cpu", "cuda")
    )
    sampler = NegativeSampler(dataset.train.users, dataset.train.items, dataset.n_items)
    n_neg = config.negatives_for(model.loss)

    state = _State(best_state=copy.deepcopy(model.state_dict()))
    if resume and run_dir is not None and (run_dir / CHECKPOINT).exists():
        state = _restore(run_dir / CHECKPOINT, model, optimizer, distiller, rng)
        log.info("resumed from epoch %d", state.epoch)

    train_users = torch.from_numpy(dataset.train.users)
    train_items = torch.from_numpy(dataset.train.items)
    started = time.perf_counter() - state.seconds
    epochs_this_call = 0
    while state.epoch < config.epochs and not state.stopped:
        tick, tick_cpu = time.perf_counter(), time.process_time()
        if distiller is not None:
            distiller.on_epoch_start(state.epoch, config.epochs)
        loss = _run_epoch(
            model,
            optimizer,
            sampler,
            train_users,
            train_items,
            n_neg,
            rng,
            config,
            distiller,
            device,
        )
        state.epoch_seconds.append(time.perf_counter() - tick)
        state.epoch += 1
        record = {
            "epoch": state.epoch,
            "loss": loss,
            "seconds": state.epoch_seconds[-1],
            # CPU time is what a shared machine's other processes do not inflate.
            "cpu_seconds": time.process_time() - tick_cpu,
        }

        if _evaluates(state.epoch, config):
            model.eval()
            score = evaluate(model.score_all, dataset, "valid", device=config.device)
            model.train()
            record[config.metric] = score[config.metric]
            state.update(score[config.metric], model, config)
        state.history.append(record)
        state.seconds = time.perf_counter() - started
        if on_epoch is not None:
            on_epoch(record)
        if run_dir is not None:
            _checkpoint(run_dir / CHECKPOINT, state, model, optimizer, distiller, rng)
        epochs_this_call += 1
        if stop_after is not None and epochs_this_call >= stop_after:
            break

    return _finish(model, dataset, config, state)


def _run_epoch(model, optimizer, sampler, users, items, n_neg, rng, config, distiller, device):
    model.train()
    negatives = torch.from_numpy(sampler.sample(users.numpy(), n_neg, rng))  # [n, n_neg]
    order = torch.from_numpy(rng.permutation(len(users)))
    total = 0.0
    for start in range(0, len(order), config.batch_size):
        idx = order[start : start + config.batch_size]
        u, i, j = users[idx].to(device), items[idx].to(device), negatives[idx].to(device)
        if distiller is None:
            loss = base_loss(model, u, i, j, config.reduction)
        else:
            loss = distilled_loss(model, distiller, u, i, j, config.reduction)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total += loss.item()
    return total


def _evaluates(epoch: int, config: TrainConfig) -> bool:
    if config.protocol == "reference":
        return epoch == config.epochs
    return epoch % config.eval_every == 0 or epoch == config.epochs


@dataclass
class _State:
    best_state: dict
    epoch: int = 0
    best_epoch: int = 0
    best_metric: float = -1.0
    bad_evals: int = 0
    stopped: bool = False
    seconds: float = 0.0
    epoch_seconds: list = field(default_factory=list)
    history: list = field(default_factory=list)

    def update(self, metric: float, model: Recommender, config: TrainConfig) -> None:
        # The reference protocol reports the last epoch, whatever validation says.
        if config.protocol == "reference" or metric > self.best_metric:
            self.best_metric, self.best_epoch, self.bad_evals = metric, self.epoch, 0
            self.best_state = copy.deepcopy(model.state_dict())
            return
        self.bad_evals += 1
        if self.bad_evals >= config.patience:
            log.info(
                "early stop at epoch %d: best %s %.4f at epoch %d",
                self.epoch,
                config.metric,
                self.best_metric,
                self.best_epoch,
            )
            self.stopped = True


def _checkpoint(path: Path, state: _State, model, optimizer, distiller, rng) -> None:
    payload = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "distiller": distiller.state_dict() if distiller is not None else {},
        "torch_rng": torch.get_rng_state(),
        "numpy_rng": rng.bit_generator.state,
        "state": {k: v for k, v in vars(state).items() if k != "best_state"},
        "best_state": state.best_state,
    }
    atomic.torch_save(path, payload)


def _restore(path: Path, model, optimizer, distiller, rng) -> _State:
    from edgerec.errors import RunDirError

    try:
        payload = torch.load(path, weights_only=True)
    except Exception as exc:  # a checkpoint from another version or a damaged file
        raise RunDirError(f"{path}: cannot resume from this checkpoint ({exc})") from None
    model.load_state_dict(payload["model"])
    optimizer.load_state_dict(payload["optimizer"])
    if distiller is not None:
        distiller.load_state_dict(payload["distiller"])
    torch.set_rng_state(payload["torch_rng"])
    rng.bit_generator.state = payload["numpy_rng"]
    return _State(best_state=payload["best_state"], **payload["state"])


def _finish(model, dataset, config: TrainConfig, state: _State) -> TrainResult:
    model.load_state_dict(state.best_state)
    model.eval()
    valid = evaluate(model.score_all, dataset, "valid", device=config.device)
    test = evaluate(model.score_all, dataset, "test", device=config.device)
    return TrainResult(
        model=model,
        valid=valid,
        test=test,
        epochs=state.epoch,
        best_epoch=state.best_epoch,
        seconds=state.seconds,
        epoch_seconds=state.epoch_seconds,
        history=state.history,
    )
