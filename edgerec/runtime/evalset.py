"""The test split of a bundle as one .npz file, so that a device without torch or pandas can
measure an export's accuracy with the evaluator training used.

    EXPORT_DIR/evalset.npz
        format_version      int, this module's EVALSET_VERSION
        n_users             int
        masked_indptr       [n_users + 1]   each user's training and validation items (masked)
        masked_items        [n masked]
        held_out_indptr     [n_users + 1]   each user's test items (held out)
        held_out_items      [n held out]

The arrays are the compressed rows of `edgerec.runtime.metrics.CSR`, stored as int32 wherever
the values fit (every catalogue below 2^31 items), which halves the file against int64.
Needs numpy and the standard library only.
"""

from __future__ import annotations

import logging
import zipfile
from pathlib import Path

import numpy as np

from edgerec import atomic
from edgerec.errors import DataError
from edgerec.runtime.metrics import CSR

log = logging.getLogger(__name__)

EVALSET = "evalset.npz"
EVALSET_VERSION = 1
_PARTS = ("masked", "held_out")
_INT32_MAX = np.iinfo(np.int32).max


def save_evalset(path: Path, masked: CSR, held_out: CSR) -> None:
    """Write (masked, held out) to `path` atomically."""
    n_users = len(masked.indptr) - 1
    if len(held_out.indptr) - 1 != n_users:
        raise DataError(
            f"masked and held-out rows differ: {n_users} users vs {len(held_out.indptr) - 1}"
        )
    arrays = {"format_version": np.int64(EVALSET_VERSION), "n_users": np.int64(n_users)}
    for name, csr in zip(_PARTS, (masked, held_out), strict=True):
        arrays[f"{name}_indptr"] = _narrow(csr.indptr)
        arrays[f"{name}_items"] = _narrow(csr.items)

    def write(tmp: Path) -> None:
        # A file object, not a path: np.savez appends ".npz" to a path that lacks it.
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **arrays)

    atomic.write_with(Path(path), write)
    log.info("wrote %s (%d users)", path, n_users)


def load_evalset(path: Path) -> tuple[CSR, CSR]:
    """(masked, held out) as saved by `save_evalset`, or a DataError saying what is wrong."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path} does not exist: expected an evalset written by edgerec export")
    try:
        with np.load(path, allow_pickle=False) as payload:
            arrays = {name: payload[name] for name in payload.files}
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise DataError(f"{path} is not a readable .npz file ({exc})") from None

    version = int(arrays.get("format_version", -1))
    if version != EVALSET_VERSION:
        raise DataError(
            f"{path}: evalset format version {version}, this reader reads {EVALSET_VERSION}: "
            "export the model again with this edgerec"
        )
    n_users = int(arrays["n_users"])
    masked, held_out = (_read_csr(path, arrays, name, n_users) for name in _PARTS)
    return masked, held_out


def _narrow(values: np.ndarray) -> np.ndarray:
    if values.size == 0 or (values.min() >= 0 and values.max() <= _INT32_MAX):
        return values.astype(np.int32)
    return values.astype(np.int64)


def _read_csr(path: Path, arrays: dict, name: str, n_users: int) -> CSR:
    try:
        indptr, items = arrays[f"{name}_indptr"], arrays[f"{name}_items"]
    except KeyError as exc:
        raise DataError(f"{path} lacks the array {exc}: not an edgerec evalset") from None
    counts = np.diff(indptr.astype(np.int64))
    if (
        indptr.shape != (n_users + 1,)
        or indptr[0] != 0
        or (counts < 0).any()
        or indptr[-1] != len(items)
    ):
        raise DataError(f"{path}: {name}_indptr does not index {name}_items for {n_users} users")

    # CSR is built from (user, item) pairs; its stable sort keeps each user's saved item order.
    users = np.repeat(np.arange(n_users, dtype=np.int64), counts)
    return CSR(users, items.astype(np.int64), n_users)
