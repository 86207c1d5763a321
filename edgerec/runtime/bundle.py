"""Read an exported bundle and serve recommendations from it, without torch.

    EXPORT_DIR/model.onnx      the recommender graph: user [batch] int64 -> items, scores
    EXPORT_DIR/id_map.json     raw user and item ids in index order
    EXPORT_DIR/evalset.npz     the test split, for measuring accuracy (edgerec.runtime.evalset)
    EXPORT_DIR/manifest.json   what the graph is, where it came from, how it was validated

This module is what runs on the device (a Raspberry Pi, say), so it imports numpy,
onnxruntime and the standard library only; `edgerec.errors` is pure Python. Opening a bundle
checks everything that can be checked without running it: the manifest is present and of this
format version, and model.onnx has the recorded size and sha256, so a truncated copy or a
swapped file is refused before it serves a single query.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgerec.errors import ExportError

log = logging.getLogger(__name__)

FORMAT = "edgerec-bundle"
FORMAT_VERSION = 1
MANIFEST, MODEL, ID_MAP = "manifest.json", "model.onnx", "id_map.json"
# The graph's one input: user indices, int64 [batch].
INPUT = "user"
_REQUIRED = ("format", "format_version", "file", "n_users", "n_items", "k", "outputs", "id_map")


class BundleError(ExportError):
    """A bundle is missing, of another format version, or does not match its manifest."""


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def open_session(model: Path | bytes, *, threads: int = 1, arena: bool = True):
    """An onnxruntime CPU session with every graph optimization and explicit thread counts.

    Thread counts are set, never left to onnxruntime, because its default (one per physical
    core) makes latency depend on the machine and fights other processes on a small device.
    `arena=False` trades some speed for a smaller resident set.
    """
    import onnxruntime as ort

    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise BundleError(f"threads must be an integer >= 1, got {threads!r}")
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.enable_cpu_mem_arena = arena
    source = model if isinstance(model, bytes) else str(model)
    return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])


@dataclass
class Bundle:
    """An opened bundle. Build it with `Bundle.open(path)`."""

    path: Path
    manifest: dict
    users: list[str]
    items: list[str]
    _session: object = field(default=None, repr=False)
    _user_index: dict[str, int] | None = field(default=None, repr=False)

    @classmethod
    def open(cls, path: Path) -> Bundle:
        path = Path(path)
        manifest = _read_manifest(path)
        _check_model_file(path, manifest)
        users, items = _read_id_map(path, manifest)
        log.info("opened %s: %d users, %d items, k %d", path, len(users), len(items), manifest["k"])
        return cls(path=path, manifest=manifest, users=users, items=items)

    @property
    def n_users(self) -> int:
        return int(self.manifest["n_users"])

    @property
    def n_items(self) -> int:
        return int(self.manifest["n_items"])

    @property
    def k(self) -> int:
        return int(self.manifest["k"])

    @property
    def scores_only(self) -> bool:
        return self.manifest["outputs"] == "scores"

    @property
    def model_path(self) -> Path:
        return self.path / self.manifest["file"]["name"]

    def session(self, threads: int = 1, arena: bool = True):
        """A new onnxruntime session on model.onnx (see `open_session`)."""
        return open_session(self.model_path, threads=threads, arena=arena)

    def recommend(self, user_indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The top k of each user: items [batch, k] int64 and scores [batch, k] float32.

        A user with fewer than k unseen items (with --exclude-seen) gets -inf scores at the
        tail of their list; drop those entries.
        """
        users = self.check_users(user_indices)
        outputs = self._default_session().run(None, {INPUT: users})
        if not self.scores_only:
            return outputs[0], outputs[1]
        scores = outputs[0]  # [batch, n_items]
        top = np.argsort(-scores, axis=1, kind="stable")[:, : self.k]
        return top.astype(np.int64), np.take_along_axis(scores, top, axis=1)

    def scores(self, user_indices: np.ndarray) -> np.ndarray:
        """Every item's score [batch, n_items], from a bundle exported with --scores-only."""
        if not self.scores_only:
            raise BundleError(
                f"{self.path} returns each user's top {self.k}, not every score: "
                "export it with --scores-only"
            )
        return self._default_session().run(None, {INPUT: self.check_users(user_indices)})[0]

    def check_users(self, user_indices) -> np.ndarray:
        """The indices as an int64 [batch] array, or a BundleError naming those out of range."""
        users = np.asarray(user_indices)
        if users.ndim != 1 or not (users.size == 0 or np.issubdtype(users.dtype, np.integer)):
            raise BundleError(
                f"user indices must be a 1-D integer array, got shape {users.shape} "
                f"of {users.dtype}"
            )
        bad = users[(users < 0) | (users >= self.n_users)]
        if bad.size:
            raise BundleError(
                f"user index {int(bad[0])} is out of range ({bad.size} of {users.size} are): "
                f"expected 0 to {self.n_users - 1}; translate raw ids with user_index()"
            )
        return users.astype(np.int64, copy=False)

    def user_index(self, raw_id: str) -> int:
        if self._user_index is None:
            self._user_index = {raw: i for i, raw in enumerate(self.users)}
        key = str(raw_id)
        if key not in self._user_index:
            raise BundleError(f"user '{key}' is not in this bundle's id map: an unknown user")
        return self._user_index[key]

    def item_ids(self, indices) -> list[str]:
        """Raw item ids of item indices (any shape, flattened in order)."""
        flat = np.asarray(indices).reshape(-1)
        bad = flat[(flat < 0) | (flat >= self.n_items)]
        if bad.size:
            raise BundleError(
                f"item index {int(bad[0])} is out of range: expected 0 to {self.n_items - 1}"
            )
        return [self.items[int(i)] for i in flat]

    def _default_session(self):
        if self._session is None:
            self._session = self.session()
        return self._session


def _read_manifest(path: Path) -> dict:
    file = path / MANIFEST
    if not file.is_file():
        raise BundleError(
            f"{path} has no {MANIFEST}: not an edgerec bundle, or an export that did not finish"
        )
    try:
        manifest = json.loads(file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BundleError(f"{file} is not valid JSON ({exc})") from None
    if not isinstance(manifest, dict):
        raise BundleError(f"{file}: expected a JSON object, got {type(manifest).__name__}")
    missing = [key for key in _REQUIRED if key not in manifest]
    if missing:
        raise BundleError(f"{file} is missing {', '.join(missing)}: not an edgerec bundle manifest")
    if manifest["format"] != FORMAT:
        raise BundleError(f"{file}: format '{manifest['format']}', expected '{FORMAT}'")
    if manifest["format_version"] != FORMAT_VERSION:
        raise BundleError(
            f"{file}: format version {manifest['format_version']}, this reader reads version "
            f"{FORMAT_VERSION}: export the model again with this edgerec"
        )
    record = manifest["file"]
    if not isinstance(record, dict) or not {"name", "sha256", "bytes"} <= set(record):
        raise BundleError(f"{file}: 'file' must record the model's name, sha256 and bytes")
    return manifest


def check_digest(file: Path, expected: str, what: str) -> str:
    """The file's sha256, or a BundleError when it is not the one the manifest records."""
    digest = sha256_of(file)
    if digest != expected:
        raise BundleError(
            f"{file}: sha256 {digest[:12]}… differs from the manifest's {expected[:12]}…: "
            f"the {what} was changed or damaged after export"
        )
    return digest


def _check_model_file(path: Path, manifest: dict) -> None:
    record = manifest["file"]
    model = path / record["name"]
    if not model.is_file():
        raise BundleError(f"{path}: the manifest names {record['name']}, which is missing")
    size = model.stat().st_size
    if size != record["bytes"]:
        raise BundleError(f"{model} has {size} bytes, the manifest records {record['bytes']}")
    check_digest(model, record["sha256"], "file")


def _read_id_map(path: Path, manifest: dict) -> tuple[list[str], list[str]]:
    file = path / manifest["id_map"]
    try:
        payload = json.loads(file.read_text())
        users = [str(u) for u in payload["users"]]
        items = [str(i) for i in payload["items"]]
    except FileNotFoundError:
        raise BundleError(f"{path}: the id map {manifest['id_map']} is missing") from None
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise BundleError(f"{file}: expected {{'users': [...], 'items': [...]}} ({exc})") from None
    if (len(users), len(items)) != (manifest["n_users"], manifest["n_items"]):
        raise BundleError(
            f"{file} maps {len(users)} users and {len(items)} items, the manifest records "
            f"{manifest['n_users']} and {manifest['n_items']}"
        )
    return users, items
