"""Options shared by the commands that train (`train`, `distill`) and how they become a config.

A flag left out is None and does not override: defaults < `--config` preset < flags.
"""

from __future__ import annotations

from enum import Enum, StrEnum
from pathlib import Path

import typer


class Split(StrEnum):
    ratio = "ratio"
    loo = "loo"


class Protocol(StrEnum):
    standard = "standard"
    reference = "reference"


class Reduction(StrEnum):
    sum = "sum"
    mean = "mean"


def _opt(default=None, *names, **kw):
    return typer.Option(default, *names, **kw)


CONFIG = _opt(None, "--config", help="A TOML preset such as configs/ml100k-bpr; flags override it.")
OUT = _opt(..., "--out", help="Run directory to write.")
JSON = _opt(False, "--json", help="Print metrics.json instead of the summary table.")
RESUME = _opt(False, "--resume", help="Continue an interrupted run in --out from its last epoch.")
DATA = _opt(
    None, "--data", help="A ratings file, a folder of pre-split .inter files, or 'synthetic'."
)
FORMAT = _opt(None, "--format", help="Override the auto-detected file format.")
VALID = _opt(
    None, "--valid", help="Pre-split data: the validation file (with --test; --data is train)."
)
TEST = _opt(None, "--test", help="Pre-split data: the test file.")
SPLIT = _opt(None, "--split", help="Leave-one-out or per-user ratio split (8:1:1).")
THRESHOLD = _opt(None, "--rating-threshold", help="Keep ratings >= this as positives.")
KCORE = _opt(None, "--kcore", help="Keep users and items with at least this many interactions.")
DIM = _opt(None, "--dim", help="Embedding size.")
LAYERS = _opt(None, "--layers", help="NCF: MLP layers.")
EPOCHS = _opt(None, "--epochs")
LR = _opt(None, "--lr")
BATCH = _opt(None, "--batch-size")
WD = _opt(None, "--weight-decay")
NEG = _opt(None, "--negatives", help="Negatives per positive (default 1 for BPR, 4 for NCF).")
SEED = _opt(None, "--seed")
DEVICE = _opt(None, "--device", help="cpu (default) or cuda.")
PROTOCOL = _opt(None, "--protocol", help="reference: fixed epochs, last epoch, one negative.")
PATIENCE = _opt(None, "--patience", help="Early stopping: evaluations without improvement.")
THREADS = _opt(None, "--threads", help="torch threads.")
REDUCTION = _opt(None, "--reduction", help="Base loss over a batch: sum (reference) or mean.")


def overrides(**flags) -> dict:
    """Nest the given flags into {"data": ..., "model": ..., "train": ...}, dropping Nones."""
    where = {
        "data": (
            "source",
            "format",
            "valid_path",
            "test_path",
            "split",
            "rating_threshold",
            "kcore",
        ),
        "model": ("name", "dim", "layers"),
        "train": (
            "epochs",
            "lr",
            "batch_size",
            "weight_decay",
            "negatives",
            "seed",
            "device",
            "protocol",
            "patience",
            "threads",
            "reduction",
        ),
    }
    nested: dict = {}
    for section, keys in where.items():
        for key in keys:
            value = flags.pop(key, None)
            if value is None:
                continue
            if isinstance(value, Enum):
                value = value.value
            if key in ("source", "valid_path", "test_path") and value != "synthetic":
                value = str(Path(value).expanduser().resolve())
            nested.setdefault(section, {})[key] = value
    if flags:
        raise TypeError(f"unplaced flags: {sorted(flags)}")
    return nested


def resolve_config(preset: Path | None, flags: dict, base: dict | None = None):
    """RunConfig from defaults, an optional base (a teacher's), a preset, then flags."""
    from edgerec.config import from_dict, load_toml, merge
    from edgerec.train.rundir import RunConfig

    payload = base or {}
    if preset is not None:
        payload = merge(payload, load_toml(preset))
    payload = merge(payload, flags)
    data = payload.get("data", {})
    # A preset's relative paths are relative to where the command runs; the saved config holds
    # absolute ones, so a student or an export finds the data from anywhere.
    for key in ("source", "valid_path", "test_path"):
        if data.get(key) not in (None, "synthetic"):
            data[key] = str(Path(data[key]).expanduser().resolve())
    return from_dict(RunConfig, payload, where=str(preset) if preset else "config")
