"""`python -m edgerec.runtime`: serve, benchmark and check a bundle where only numpy and
onnxruntime are installed (a device, an emulated AArch64 interpreter, a CI box without torch).

    python -m edgerec.runtime recommend BUNDLE --user RAW_ID [--user ...] [--k K]
                                        [--fallback popularity] [--json]
    python -m edgerec.runtime bench BUNDLE [BUNDLE ...] [options of edgerec.runtime.bench run]
    python -m edgerec.runtime verify BUNDLE [--json]

A bundle exported with `--bundle-runner` carries these commands as one file, so that on the
device `python runner.pyz recommend . --user 42` is all it takes.

Users and items are raw ids (the dataset's own), translated through the bundle's id map. An
unknown user is an error, unless `--fallback popularity` is given: then that user gets the most
popular items, popularity being the number of interactions an item has in the masked rows of
the bundle's evalset.npz (training and validation, what the model was fitted and selected on;
never the test split).

This module imports numpy, onnxruntime and the standard library only (and onnxruntime only
once a session is opened). Every `EdgerecError` is caught once, in `main`, and becomes one line
on stderr and exit code 2; so do usage errors.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from edgerec.errors import EdgerecError
from edgerec.runtime.bundle import Bundle, BundleError, check_digest

log = logging.getLogger(__name__)

PROG = "python -m edgerec.runtime"
FALLBACKS = ("popularity",)
MODEL, POPULARITY = "model", "popularity"


@dataclass(frozen=True)
class Recommendation:
    """One user's list: raw item ids best first, with the model's scores or the items' counts."""

    user: str
    source: str
    items: list[str]
    scores: list[float]


def recommend(
    bundle: Bundle, raw_users: Sequence[str], k: int | None = None, fallback: str | None = None
) -> list[Recommendation]:
    """The top k of each raw user id, in the order given; all known users in one query."""
    k = _check_k(bundle, k)
    if fallback is not None and fallback not in FALLBACKS:
        raise BundleError(f"fallback '{fallback}' is unknown: expected one of {FALLBACKS}")

    known = {raw: _index_or_none(bundle, raw, fallback) for raw in raw_users}
    indices = sorted({i for i in known.values() if i is not None})
    by_index = {}
    if indices:
        items, scores = bundle.recommend(np.asarray(indices, dtype=np.int64))  # [batch, K']
        for row, index in enumerate(indices):
            # An --exclude-seen graph pads a user with fewer unseen items than K' with -inf.
            keep = np.isfinite(scores[row, :k])
            by_index[index] = (items[row, :k][keep], scores[row, :k][keep])

    popular = popularity(bundle, k) if None in known.values() else None
    results = []
    for raw in raw_users:
        index = known[raw]
        if index is None:
            results.append(_listing(bundle, raw, POPULARITY, *popular))
        else:
            results.append(_listing(bundle, raw, MODEL, *by_index[index]))
    return results


def popularity(bundle: Bundle, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k items with the most interactions and their counts; ties go to the lower index."""
    counts = _item_counts(bundle)  # [n_items]
    top = np.argsort(-counts, kind="stable")[:k]
    return top, counts[top]


def verify(bundle_path: Path) -> list[str]:
    """Check a bundle as far as it can be checked here; one line per passed check.

    Opening it checks the manifest, model.onnx's size and sha256 and the id map; then the
    runner's sha256 (when it has one), the evalset against the index spaces, and a query in
    this machine's onnxruntime. The first failure raises.
    """
    from edgerec.runtime.bench import check_evalset, open_bundle, precision_of, runtime_info

    bundle = open_bundle(Path(bundle_path))
    manifest = bundle.manifest
    record = manifest["file"]
    model = manifest.get("model") or {}
    passed = [
        f"manifest: {manifest['format']} version {manifest['format_version']}, "
        f"{model.get('kind', 'a model')} dim {model.get('dim', '?')} "
        f"{precision_of(manifest)}, top {bundle.k} of {bundle.n_items} items",
        f"{record['name']}: {record['bytes']:,} bytes, sha256 {record['sha256'][:12]} matches",
        f"{manifest['id_map']}: {len(bundle.users)} users, {len(bundle.items)} items",
    ]

    runner = manifest.get("runner")
    if runner:
        passed.append(_check_runner(bundle.path, runner))

    evalset_name = manifest.get("evalset")
    if evalset_name and (bundle.path / evalset_name).is_file():
        from edgerec.runtime.evalset import load_evalset

        masked, held_out = load_evalset(bundle.path / evalset_name)
        check_evalset(bundle, masked, held_out)
        passed.append(f"{evalset_name}: {int(held_out.items.size)} held-out interactions fit")

    items, _ = bundle.recommend(np.zeros(1, dtype=np.int64))  # [1, K']
    info = runtime_info()
    passed.append(
        f"onnxruntime: {info['onnxruntime']} on {info['machine']} loads the graph and answers "
        f"a query ({items.shape[1]} items)"
    )
    passed.append(f"runtime: edgerec from {Path(__file__).resolve().parents[1]}")
    return passed


def main(argv: Sequence[str] | None = None, *, prog: str = PROG) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if argv[:1] == ["bench"]:
        # The measurement core owns the bench options and its own error boundary; forwarding
        # keeps one definition of them, and the rows identical to `edgerec bench`.
        from edgerec.runtime import bench

        return bench.main(["run", *argv[1:]])

    args = _parser(prog).parse_args(argv)
    try:
        if args.command == "recommend":
            return _recommend_command(args)
        return _verify_command(args)
    except EdgerecError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2


def _check_k(bundle: Bundle, k: int | None) -> int:
    if k is None:
        return bundle.k
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= bundle.k:
        raise BundleError(
            f"--k {k} is out of range: {bundle.path} returns at most its top {bundle.k}; "
            f"ask 1 to {bundle.k}, or export again with a larger --k"
        )
    return k


def _index_or_none(bundle: Bundle, raw: str, fallback: str | None) -> int | None:
    """The user's index; None for an unknown user when a fallback serves them."""
    try:
        return bundle.user_index(raw)
    except BundleError:
        if fallback is None:
            raise BundleError(
                f"user '{raw}' is not in the id map of {bundle.path} ({bundle.n_users} users): "
                "check the id, or pass --fallback popularity to serve unknown users"
            ) from None
        log.warning("user '%s' is unknown: serving the %s fallback", raw, fallback)
        return None


def _item_counts(bundle: Bundle) -> np.ndarray:
    """[n_items] interactions per item in the evalset's masked rows (training + validation)."""
    from edgerec.runtime.evalset import EVALSET, load_evalset

    # Limitation: popularity needs the bundle's evalset.npz, because the manifest records no
    # item counts; a bundle copied without it cannot serve the fallback.
    file = bundle.path / bundle.manifest.get("evalset", EVALSET)
    if not file.is_file():
        raise BundleError(f"--fallback popularity counts items in {file}, which is missing")
    masked, _ = load_evalset(file)
    if masked.items.size and masked.items.max() >= bundle.n_items:
        raise BundleError(f"{file} names items beyond the bundle's {bundle.n_items}")
    return np.bincount(masked.items, minlength=bundle.n_items)


def _listing(bundle: Bundle, raw: str, source: str, items, scores) -> Recommendation:
    return Recommendation(
        user=raw,
        source=source,
        items=bundle.item_ids(items),
        scores=[float(s) for s in np.asarray(scores).reshape(-1)],
    )


def _check_runner(path: Path, record: dict) -> str:
    file = path / record["file"]
    if not file.is_file():
        raise BundleError(f"{path}: the manifest names the runner {record['file']}, missing")
    digest = check_digest(file, record["sha256"], "runner")
    return f"{record['file']}: sha256 {digest[:12]} matches"


def _recommend_command(args: argparse.Namespace) -> int:
    bundle = Bundle.open(Path(args.bundle))
    results = recommend(bundle, args.user, args.k, args.fallback)
    if args.json:
        payload = {"bundle": str(bundle.path), "recommendations": [asdict(r) for r in results]}
        sys.stdout.write(json.dumps(payload, indent=2) + "\n")
    else:
        for r in results:
            sys.stdout.write(f"{r.user}\t{r.source}\t{' '.join(r.items)}\n")
    return 0


def _verify_command(args: argparse.Namespace) -> int:
    passed = verify(Path(args.bundle))
    if args.json:
        sys.stdout.write(json.dumps({"bundle": args.bundle, "passed": passed}, indent=2) + "\n")
    else:
        sys.stdout.write("".join(f"✓ {line}\n" for line in passed))
    return 0


class _OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line and exit code 2, like every other bad input."""

    def error(self, message: str):
        self.exit(2, f"error: {self.prog}: {message} (see --help)\n")


def _parser(prog: str) -> argparse.ArgumentParser:
    parser = _OneLineParser(
        prog=prog,
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("recommend", help="the top k items of users, by raw id")
    serve.add_argument("bundle", help="an export directory")
    serve.add_argument("--user", action="append", required=True, help="a raw user id; repeat")
    serve.add_argument("--k", type=int, help="items per user (default: the export's k)")
    serve.add_argument("--fallback", choices=FALLBACKS, help="serve unknown users this way")
    serve.add_argument("--json", action="store_true", help="print JSON with the scores")

    commands.add_parser(
        "bench",
        add_help=False,
        help="latency, memory and accuracy, as JSON rows (the options of edgerec.runtime.bench)",
    )

    check = commands.add_parser("verify", help="check the manifest, hashes and a query")
    check.add_argument("bundle", help="an export directory")
    check.add_argument("--json", action="store_true", help="print the passed checks as JSON")
    return parser
