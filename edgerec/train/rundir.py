"""The run directory: everything `edgerec train` and `edgerec distill` leave behind.

    RUN_DIR/config.json      the resolved RunConfig (data, model, train, distill, teacher)
    RUN_DIR/dataset.json     the dataset's sizes and fingerprint
    RUN_DIR/id_map.json      raw user and item ids in index order
    RUN_DIR/model.pt         the selected model's state_dict (loaded with weights_only=True)
    RUN_DIR/checkpoint.pt    the last epoch's full training state, for --resume
    RUN_DIR/metrics.json     {"valid": {...}, "test": {...}, "epochs", "seconds", "params", ...}

`metrics.json` is written last: a directory without it is an unfinished run. Every file is
written atomically, so an interruption never leaves one half-written.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from edgerec import atomic
from edgerec.config import from_dict, to_dict
from edgerec.data.config import DataConfig
from edgerec.data.interactions import IdMap, SplitDataset
from edgerec.distill.config import DistillConfig
from edgerec.errors import EdgerecError, RunDirError
from edgerec.models.config import ModelConfig
from edgerec.train.config import TrainConfig

CONFIG, DATASET, ID_MAP, MODEL, METRICS = (
    "config.json",
    "dataset.json",
    "id_map.json",
    "model.pt",
    "metrics.json",
)


@dataclass(frozen=True)
class RunConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)
    # The teacher's run directory, for a distilled student.
    teacher: str | None = None


@dataclass(frozen=True)
class Run:
    """A finished run directory, read back."""

    path: Path
    config: RunConfig
    dataset: dict
    metrics: dict

    def id_map(self) -> IdMap:
        return IdMap.load(self.path / ID_MAP)

    def load_model(self):
        """The trained model, in eval mode, on the CPU."""
        import torch

        from edgerec.models.registry import build_model

        model = build_model(self.config.model, self.dataset["users"], self.dataset["items"])
        try:
            state = torch.load(self.path / MODEL, map_location="cpu", weights_only=True)
            model.load_state_dict(state)
        except Exception as exc:  # a damaged file or weights of another shape
            raise RunDirError(f"{self.path / MODEL}: cannot load the model ({exc})") from None
        return model.eval()

    def load_dataset(self) -> SplitDataset:
        """The run's dataset, rebuilt from its config and checked against its fingerprint."""
        from edgerec.data import load_dataset

        dataset = load_dataset(self.config.data)
        check_same_data(dataset, self)
        return dataset


def check_same_data(dataset: SplitDataset, run: Run) -> None:
    expected = run.dataset.get("fingerprint")
    if dataset.fingerprint() != expected:
        raise RunDirError(
            f"{run.path} was trained on other data (fingerprint {expected}, these data give "
            f"{dataset.fingerprint()}): use the same data, split and seed"
        )
    if dataset.id_map != run.id_map():
        raise RunDirError(f"{run.path}: its id mapping differs from these data's")


def prepare(path: Path, config: RunConfig, dataset: SplitDataset, *, resume: bool) -> None:
    """Create RUN_DIR with its config, dataset and id map; refuse to overwrite another run."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise RunDirError(f"{path} is a file: expected a run directory to write into")
    if path.exists() and any(path.iterdir()) and not resume:
        raise RunDirError(
            f"{path} is not empty: choose a new --out, remove it, or pass --resume to continue"
        )
    if resume and (path / CONFIG).exists():
        saved = json.loads((path / CONFIG).read_text())
        if saved != to_dict(config):
            raise RunDirError(f"{path}: --resume needs the same settings as the run it continues")
    path.mkdir(parents=True, exist_ok=True)
    atomic.write_json(path / CONFIG, to_dict(config))
    atomic.write_json(path / DATASET, dataset.summary())
    atomic.write_bytes(path / ID_MAP, json.dumps(dataset.id_map.to_json()).encode())


def finish(path: Path, model, metrics: dict) -> None:
    import torch

    atomic.write_with(Path(path) / MODEL, lambda tmp: torch.save(model.state_dict(), tmp))
    atomic.write_json(Path(path) / METRICS, metrics)


def open_run(path: Path) -> Run:
    """A finished run directory, or a RunDirError saying what is missing."""
    path = Path(path)
    if not path.is_dir():
        raise RunDirError(f"{path} is not a directory: expected a run directory from edgerec train")
    missing = [
        name for name in (CONFIG, DATASET, ID_MAP, MODEL, METRICS) if not (path / name).is_file()
    ]
    if missing:
        raise RunDirError(
            f"{path} is not a finished run: missing {', '.join(missing)} "
            "(expected the output of edgerec train or edgerec distill)"
        )
    try:
        config = from_dict(
            RunConfig, json.loads((path / CONFIG).read_text()), where=str(path / CONFIG)
        )
        dataset = json.loads((path / DATASET).read_text())
        metrics = json.loads((path / METRICS).read_text())
    except json.JSONDecodeError as exc:
        raise RunDirError(f"{path}: a run file is not valid JSON ({exc})") from None
    except EdgerecError as exc:
        raise RunDirError(f"{path}: {exc}") from None
    return Run(path=path, config=config, dataset=dataset, metrics=metrics)
