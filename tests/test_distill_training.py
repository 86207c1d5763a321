"""Distillation inside the training loop: every method trains a student of either family, and
the teacher stays exactly as it was."""

import pytest
import torch

from edgerec.data import DataConfig, SyntheticConfig
from edgerec.distill.job import distill_run, student_config
from edgerec.models.config import ModelConfig
from edgerec.train.config import TrainConfig
from edgerec.train.job import train_run
from edgerec.train.rundir import RunConfig, open_run

DATA = DataConfig(synthetic=SyntheticConfig(n_users=150, n_items=220, mean_interactions=20))


@pytest.fixture(scope="module", params=["bpr", "ncf"])
def teacher(request, tmp_path_factory):
    out = tmp_path_factory.mktemp(request.param) / "teacher"
    config = RunConfig(
        data=DATA,
        model=ModelConfig(name=request.param, dim=16, layers=2),
        train=TrainConfig(epochs=8, lr=1e-2, batch_size=256),
    )
    train_run(config, out)
    return open_run(out)


@pytest.mark.parametrize("method", ["none", "de", "ftd", "htd"])
def test_every_method_trains_a_student_and_leaves_the_teacher_alone(teacher, method, tmp_path):
    before = {k: v.clone() for k, v in teacher.load_model().state_dict().items()}
    overrides = {
        "model": {"dim": 4, "layers": 1},
        "distill": {"method": method},
        "train": {"epochs": 4},
    }
    metrics = distill_run(teacher.path, student_config(teacher, overrides), tmp_path / "s")

    losses = [r["loss"] for r in metrics["history"]]
    assert losses[-1] < losses[0]
    assert metrics["method"] == method and metrics["compression"] > 3
    assert metrics["test"]["recall@20"] > 0
    after = teacher.load_model().state_dict()
    for key, value in before.items():
        assert torch.equal(after[key], value), key


def test_the_distillation_term_changes_the_student(teacher, tmp_path):
    """Same seed, same data: with a large lambda, FTD must end somewhere else than none."""
    students = {}
    for method in ("none", "ftd"):
        overrides = {
            "model": {"dim": 4, "layers": 1},
            "train": {"epochs": 3},
            "distill": {"method": method, "lambda_": 1.0},
        }
        distill_run(teacher.path, student_config(teacher, overrides), tmp_path / method)
        students[method] = open_run(tmp_path / method).load_model().state_dict()
    moved = [not torch.equal(students["none"][k], students["ftd"][k]) for k in students["none"]]
    assert any(moved)
