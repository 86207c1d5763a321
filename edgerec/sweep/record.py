"""One JSON record per finished unit, and what a rerun may trust.

    SWEEP_DIR/records/d16-htd-s0.json                   a distillation
    SWEEP_DIR/records/d16-htd-s0/int8-arm64.json        an export
    SWEEP_DIR/records/d16-htd-s0/int8-arm64/cpu.json    a benchmark

A record is written atomically (temp file + rename) once its unit's outputs are complete, and
the outputs are themselves atomic (a run's metrics.json is written last, a bundle is renamed
into place whole), so the record's presence is the proof that a unit finished. A rerun trusts a
record only if its hash is the unit's current config hash and the record of the unit it needed
is the one it was built from (`upstream`, a digest of that record's file): a redone
distillation makes its exports redone too. A unit without a trusted record is redone from
scratch, its outputs removed first. A failed unit is recorded with its error and kept (rerun
with retry_failed to try again); a skipped one (a device not available) is tried again.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import logging
import shutil
import traceback
from dataclasses import asdict, dataclass
from pathlib import Path

from edgerec import atomic
from edgerec.errors import EdgerecError

log = logging.getLogger(__name__)

RECORDS = "records"
OK, FAILED, SKIPPED = "ok", "failed", "skipped"


@dataclass(frozen=True)
class Record:
    unit: str
    kind: str
    hash: str
    status: str
    # Digest of the needed unit's record when this one ran; None for a unit that needs none.
    upstream: str | None
    seconds: float
    finished: str
    result: dict | None = None
    # {"type", "message"} and, for an exception that is not an EdgerecError, "traceback".
    error: dict | None = None

    @property
    def ok(self) -> bool:
        return self.status == OK


class RecordStore:
    """The records of one sweep directory."""

    def __init__(self, sweep_dir: Path):
        self.root = Path(sweep_dir) / RECORDS

    def path(self, unit_id: str) -> Path:
        return self.root / f"{unit_id}.json"

    def read(self, unit_id: str) -> Record | None:
        path = self.path(unit_id)
        if not path.is_file():
            return None
        try:
            return Record(**json.loads(path.read_text()))
        except (json.JSONDecodeError, TypeError) as exc:
            # Cannot happen through `write`; a file edited or damaged by hand is redone.
            log.warning("%s is not a record (%s): its unit is redone", path, exc)
            return None

    def digest(self, unit_id: str | None) -> str | None:
        if unit_id is None:
            return None
        path = self.path(unit_id)
        return hashlib.sha256(path.read_bytes()).hexdigest()[:16] if path.is_file() else None

    def write(self, record: Record) -> Path:
        path = self.path(record.unit)
        atomic.write_json(path, asdict(record))
        return path

    def reusable(self, unit, *, retry_failed: bool = False) -> Record | None:
        """The unit's record if a rerun may keep it instead of redoing the unit."""
        record = self.read(unit.id)
        if record is None:
            return None
        if record.hash != unit.hash:
            log.info("%s: recorded with other settings, redone", unit.id)
            return None
        if record.upstream != self.digest(unit.parent):
            log.info("%s: the unit it needs was redone since", unit.id)
            return None
        if record.status == SKIPPED or (record.status == FAILED and retry_failed):
            return None
        return record


def new_record(unit, status: str, upstream: str | None, seconds: float, **fields) -> Record:
    now = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    return Record(unit.id, unit.kind, unit.hash, status, upstream, seconds, now, **fields)


def error_of(exc: BaseException) -> dict:
    """What a record keeps of a failure: its type and message (and traceback, for a bug)."""
    error = {"type": type(exc).__name__, "message": str(exc)}
    if not isinstance(exc, EdgerecError):
        # The header and the innermost frames: where it broke, without pages of call chain.
        lines = traceback.format_exception(exc)
        error["traceback"] = "".join(lines[:1] + lines[1:][-6:])
    return error


def clear_unfinished(out: str | Path | None) -> None:
    """Remove what an interrupted unit may have left: its directory and its staging siblings.

    `edgerec.atomic.staged_directory` builds a bundle in `.NAME.*` beside it; a kill leaves that
    behind, since no cleanup runs on SIGKILL.
    """
    if out is None:
        return
    out = Path(out)
    if out.exists():
        log.info("removing the unfinished %s", out)
        shutil.rmtree(out)
    if out.parent.is_dir():
        for stale in out.parent.glob(f".{out.name}.*"):
            shutil.rmtree(stale, ignore_errors=True)
