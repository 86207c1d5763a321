"""Write a bundle: model.onnx, id_map.json, evalset.npz and manifest.json in one directory,
atomically.

The layout and its reader are in `edgerec.runtime.bundle`. The directory is built in a staging
directory beside its target and renamed into place whole (`edgerec.atomic.staged_directory`),
so an interrupted export leaves either the previous bundle or nothing, never a directory that
looks complete. The manifest records everything needed to trust and trace the model file:

    format, format_version       what reads it
    model                        family, dim, layers, params, folded or not
    k, outputs, exclude_seen     what a query returns
    n_users, n_items, id_map     the index spaces and the file that maps raw ids to them
    evalset                      the test split as compressed rows (`edgerec.runtime.evalset`),
                                 so a device measures accuracy with training's evaluator
    dataset                      name and fingerprint of the data it was trained on
    lineage                      the run exported, its teacher run and distillation method
    quantization                 null for fp32, else the QuantConfig and what it resolved to
    file                         name, sha256 and bytes of model.onnx
    graph                        opset, inputs and outputs with dtypes and shapes
    validation                   {"passed": bool, "checks": [...]}, or skipped
    versions                     edgerec, python, torch, onnx, onnxruntime, onnxscript, numpy
    export_config                the resolved ExportConfig
"""

from __future__ import annotations

import importlib.metadata
import json
import logging
import platform
import shutil
from pathlib import Path

from edgerec.errors import ExportError
from edgerec.runtime.bundle import FORMAT, FORMAT_VERSION, ID_MAP, MANIFEST, MODEL, sha256_of

log = logging.getLogger(__name__)

_LIBRARIES = ("torch", "onnx", "onnxruntime", "onnxscript", "numpy")


def check_target(out: Path, run_dir: Path) -> None:
    """Refuse a target that writing the bundle would destroy or that is not ours to replace."""
    out, run_dir = Path(out).resolve(), Path(run_dir).resolve()
    if out == run_dir or out in run_dir.parents:
        raise ExportError(f"--out {out} would replace the run directory {run_dir}: choose another")
    if out.exists() and not out.is_dir():
        raise ExportError(f"{out} is a file: expected a directory to write the bundle into")
    if out.is_dir() and any(out.iterdir()) and not (out / MANIFEST).is_file():
        raise ExportError(
            f"{out} is not empty and holds no bundle: choose a new --out or empty it "
            "(an existing bundle there is replaced)"
        )


def write_bundle(stage: Path, model_file: Path, dataset, manifest: dict) -> dict:
    """Fill the staging directory; returns the manifest completed with the file record."""
    from edgerec.evaluate.metrics import split_csr
    from edgerec.runtime.evalset import EVALSET, save_evalset

    stage = Path(stage)
    shutil.copyfile(model_file, stage / MODEL)
    (stage / ID_MAP).write_text(json.dumps(dataset.id_map.to_json()))
    # Limitation: the evalset holds the test split's interactions, so a bundle of a dataset that
    # may not be redistributed (MovieLens) may not be published either.
    save_evalset(stage / EVALSET, *split_csr(dataset, "test"))
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        **manifest,
        "id_map": ID_MAP,
        "evalset": EVALSET,
        "file": {
            "name": MODEL,
            "sha256": sha256_of(stage / MODEL),
            "bytes": (stage / MODEL).stat().st_size,
        },
    }
    # Written last: inside the staging directory nothing reads it yet, but a bundle copied by
    # hand file by file is then only complete once its manifest has arrived.
    (stage / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def graph_signature(model_file: Path) -> dict:
    """The graph's opset, inputs and outputs, as a reader needs to call it."""
    import onnx

    model = onnx.load(str(model_file), load_external_data=False)
    opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))

    def describe(value) -> dict:
        tensor = value.type.tensor_type
        dims = [d.dim_param or d.dim_value for d in tensor.shape.dim]
        dtype = onnx.helper.tensor_dtype_to_np_dtype(tensor.elem_type).name
        return {"name": value.name, "dtype": dtype, "shape": dims}

    return {
        "opset": opset,
        "inputs": [describe(v) for v in model.graph.input],
        "outputs": [describe(v) for v in model.graph.output],
    }


def library_versions() -> dict:
    import edgerec

    versions = {"edgerec": edgerec.__version__, "python": platform.python_version()}
    for name in _LIBRARIES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions
