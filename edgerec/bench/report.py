"""A benchmark's results on disk, beside the config and the machine that produced them.

    OUT/bench.json    {"config", "machine", "runtime", "rows"}: everything, nested as measured
    OUT/bench.csv     the rows flattened, one column per value (latency_ms.p50 → latency_p50_ms)
    OUT/config.json   the resolved BenchConfig alone, to rerun the benchmark

Every file is written atomically.
"""

from __future__ import annotations

import csv
import io
import json
import logging
from pathlib import Path

from edgerec import atomic
from edgerec.bench.config import BenchConfig
from edgerec.config import to_dict
from edgerec.errors import BenchError

log = logging.getLogger(__name__)

JSON, CSV, CONFIG = "bench.json", "bench.csv", "config.json"


def payload(result) -> dict:
    """The JSON form of a `BenchResult`."""
    return {
        "config": to_dict(result.config),
        "machine": result.machine,
        "runtime": result.runtime,
        "rows": result.rows,
    }


def write_report(out: Path, result) -> dict[str, Path]:
    """Write bench.json, bench.csv and config.json into `out`; returns their paths."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise BenchError(f"--out {out} is a file: expected a directory to write results into")
    paths = {"json": out / JSON, "csv": out / CSV, "config": out / CONFIG}
    atomic.write_json(paths["json"], payload(result))
    atomic.write_bytes(paths["csv"], to_csv(result.rows).encode())
    atomic.write_json(paths["config"], to_dict(result.config))
    log.info("wrote %s", ", ".join(str(p) for p in paths.values()))
    return paths


def read_config(path: Path) -> BenchConfig:
    from edgerec.config import from_dict

    return from_dict(BenchConfig, json.loads(Path(path).read_text()), where=str(path))


def flatten(row: dict) -> dict:
    """A row with its nested latency as latency_p50_ms, latency_p90_ms, ..."""
    flat = {}
    for key, value in row.items():
        if key == "latency_ms":
            flat.update({f"latency_{name}_ms": v for name, v in value.items()})
        else:
            flat[key] = value
    return flat


def to_csv(rows: list[dict]) -> str:
    flat = [flatten(r) for r in rows]
    columns = list(dict.fromkeys(key for r in flat for key in r))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(flat)
    return buffer.getvalue()
