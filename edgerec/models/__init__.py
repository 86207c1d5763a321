"""Recommender models: BPR-MF, NCF/NeuMF, the popularity baseline, and a registry by name."""

from edgerec.models.config import ModelConfig

__all__ = ["ModelConfig"]
