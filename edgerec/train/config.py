"""How a model is trained: the `train` table of every run config."""

from __future__ import annotations

from dataclasses import dataclass

from edgerec.errors import ConfigError

PROTOCOLS = ("standard", "reference")
REDUCTIONS = ("sum", "mean")


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 100
    lr: float = 1e-3
    batch_size: int = 2048
    weight_decay: float = 0.0
    # Negatives per positive; None takes the model's usual number (1 for BPR, 4 for NCF).
    negatives: int | None = None
    seed: int = 2020
    device: str = "cpu"
    # Early stopping: stop after this many evaluations without improvement of `metric`.
    patience: int = 10
    metric: str = "recall@20"
    eval_every: int = 1
    # "standard": early stopping on validation, best checkpoint kept. "reference": the protocol
    # of the Topology Distillation reference code, fixed epochs, the last epoch reported and one
    # negative per positive, so that our figures can be set beside the paper's.
    protocol: str = "standard"
    # How the base loss is reduced over a batch. "sum" is the reference's (its lambda of 1e-3
    # for distillation is relative to a summed base loss); "mean" makes the loss scale free.
    reduction: str = "sum"
    threads: int | None = None

    def __post_init__(self) -> None:
        checks = {
            "epochs": self.epochs >= 1,
            "lr": self.lr > 0,
            "batch_size": self.batch_size >= 1,
            "weight_decay": self.weight_decay >= 0,
            "patience": self.patience >= 1,
            "eval_every": self.eval_every >= 1,
        }
        for name, ok in checks.items():
            if not ok:
                raise ConfigError(f"train.{name}={getattr(self, name)} is out of range")
        if self.negatives is not None and self.negatives < 1:
            raise ConfigError(f"train.negatives must be >= 1, got {self.negatives}")
        if self.protocol not in PROTOCOLS:
            raise ConfigError(
                f"protocol '{self.protocol}' is unknown: expected one of {', '.join(PROTOCOLS)}"
            )
        if self.reduction not in REDUCTIONS:
            raise ConfigError(
                f"reduction '{self.reduction}' is unknown: expected one of {', '.join(REDUCTIONS)}"
            )
        if self.device not in ("cpu", "cuda") and not self.device.startswith("cuda:"):
            raise ConfigError(f"device '{self.device}' is unknown: expected cpu or cuda")
        name, _, k = self.metric.partition("@")
        if name not in ("recall", "ndcg", "hr") or not k.isdigit():
            raise ConfigError(
                f"metric '{self.metric}' is unknown: expected e.g. recall@20, ndcg@10"
            )

    def negatives_for(self, loss: str) -> int:
        if self.protocol == "reference":
            return 1
        if self.negatives is not None:
            return self.negatives
        return 1 if loss == "bpr" else 4
