"""Distillation losses by name.

`build_distill_loss(config, d_student, d_teacher)` is the only way the rest of edgerec makes a
distillation loss. The loss it returns already carries its weights (lambda, and alpha for HTD), so
a training step computes `base_loss + distill(student, teacher)`. The loss modules import torch;
this module does not, so that the CLI can list `Method` cheaply.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING

from edgerec.errors import ConfigError

if TYPE_CHECKING:
    from edgerec.distill.base import DistillLoss
    from edgerec.distill.config import DistillConfig


class Method(StrEnum):
    none = "none"
    ftd = "ftd"
    htd = "htd"
    de = "de"


def build_distill_loss(config: DistillConfig, d_student: int, d_teacher: int) -> DistillLoss | None:
    """The loss of `config.method` for these representation sizes; None for "none"."""
    if d_student < 1 or d_teacher < 1:
        raise ConfigError(
            f"distillation needs representations, got d_student={d_student}, d_teacher={d_teacher}"
        )

    method = Method(config.method)
    if method is Method.none:
        return None
    if method is Method.ftd:
        from edgerec.distill.ftd import FTDLoss

        return FTDLoss(lambda_=config.lambda_, reduction=config.reduction)

    experts = {
        "d_student": d_student,
        "d_teacher": d_teacher,
        "groups": config.groups,
        "lambda_": config.lambda_,
        "reduction": config.reduction,
        "temperature_start": config.temperature_start,
        "temperature_end": config.temperature_end,
    }
    if method is Method.htd:
        from edgerec.distill.htd import HTDLoss

        return HTDLoss(alpha=config.alpha, **experts)

    from edgerec.distill.de import DELoss

    return DELoss(**experts)
