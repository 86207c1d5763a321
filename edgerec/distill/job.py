"""`edgerec distill` as a library call: a teacher run + a student config → a student run.

The student inherits the teacher's data and training settings unless told otherwise, and must
see exactly the teacher's data: the dataset is rebuilt from the student's config and checked
against the teacher's fingerprint and id mapping before anything is written.
"""

from __future__ import annotations

from pathlib import Path

from edgerec.config import from_dict, merge, to_dict
from edgerec.train import rundir
from edgerec.train.loop import EpochCallback


def student_config(teacher: rundir.Run, overrides: dict, preset: dict | None = None):
    """The teacher's RunConfig with the student's model, distillation and any overrides."""
    base = to_dict(teacher.config)
    base["distill"] = to_dict(rundir.RunConfig().distill)
    payload = merge(base, preset or {})
    payload = merge(payload, overrides)
    payload["teacher"] = str(teacher.path.resolve())
    return from_dict(rundir.RunConfig, payload, where="student config")


def distill_run(
    teacher_dir: Path,
    config: rundir.RunConfig,
    out: Path,
    *,
    resume: bool = False,
    on_epoch: EpochCallback | None = None,
) -> dict:
    """Distill a student into `out`; returns its metrics.json content."""
    from edgerec.distill.distiller import Distiller
    from edgerec.distill.registry import build_distill_loss
    from edgerec.train.job import train_run

    teacher_run = rundir.open_run(teacher_dir)

    def factory(dataset, student):
        rundir.check_same_data(dataset, teacher_run)
        teacher = teacher_run.load_model()
        loss = build_distill_loss(
            config.distill, student.representation_dim, teacher.representation_dim
        )
        extra = {
            "method": config.distill.method,
            "teacher": str(teacher_run.path.resolve()),
            "teacher_params": teacher.n_params(),
            "compression": teacher.n_params() / student.n_params(),
            "teacher_test": teacher_run.metrics.get("test", {}),
        }
        return (Distiller(teacher, loss) if loss is not None else None), extra

    return train_run(config, out, resume=resume, on_epoch=on_epoch, distiller_factory=factory)
