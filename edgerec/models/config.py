"""A model's family and size: the `model` table of every run config (no torch import)."""

from __future__ import annotations

from dataclasses import dataclass

from edgerec.errors import ConfigError


@dataclass(frozen=True)
class ModelConfig:
    name: str = "bpr"
    # Embedding size. For NCF each of the GMF and MLP towers has embeddings of this size.
    dim: int = 64
    # NCF only: number of MLP layers, widths 2*dim, dim, dim/2, ... (He et al. 2017's tower).
    layers: int = 3
    dropout: float = 0.0

    def __post_init__(self) -> None:
        if self.dim < 1:
            raise ConfigError(f"model dim must be >= 1, got {self.dim}")
        if self.layers < 1:
            raise ConfigError(f"model layers must be >= 1, got {self.layers}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"model dropout must be in [0, 1), got {self.dropout}")
