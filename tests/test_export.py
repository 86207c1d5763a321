"""Export to ONNX and int8, validation, bundles and their torch-free reader, on real sessions.

Tiny runs trained on the synthetic dataset (120 users, 200 items, dim 8) are exported once per
session; every check runs the exported graphs in onnxruntime and compares them with the PyTorch
model they came from, computed here independently of the export code.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

from edgerec.data.config import DataConfig
from edgerec.data.synthetic import SyntheticConfig
from edgerec.errors import ConfigError, ExportError, ValidationError
from edgerec.export import validate
from edgerec.export.config import ExportConfig, QuantConfig
from edgerec.export.job import export_run
from edgerec.export.presets import PRESETS
from edgerec.export.quantize import quantize_model
from edgerec.models.base import ModelConfig
from edgerec.runtime.bundle import Bundle, BundleError, open_session
from edgerec.runtime.evalset import load_evalset
from edgerec.train.config import TrainConfig
from edgerec.train.job import train_run
from edgerec.train.rundir import RunConfig, open_run

K = 10
TINY_DATA = DataConfig(synthetic=SyntheticConfig(n_users=120, n_items=200, mean_interactions=15))


def _train(root: Path, name: str, data: DataConfig = TINY_DATA, dim: int = 8, epochs: int = 8):
    out = root / name
    config = RunConfig(
        data=data,
        model=ModelConfig(name=name.split("-")[0], dim=dim),
        # Trained enough that scores are not near ties, which int8 would reorder at random.
        train=TrainConfig(epochs=epochs, lr=1e-2, batch_size=256),
    )
    train_run(config, out)
    return out


@pytest.fixture(scope="session")
def runs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("runs")
    return {name: _train(root, name) for name in ("bpr", "ncf")}


@pytest.fixture(scope="session")
def bundles(runs, tmp_path_factory) -> dict[str, Path]:
    """fp32 bundles: BPR and folded NCF, each with and without the seen mask, unfolded NCF."""
    root = tmp_path_factory.mktemp("bundles")
    plan = {
        "bpr": (runs["bpr"], ExportConfig(k=K)),
        "bpr-seen": (runs["bpr"], ExportConfig(k=K, exclude_seen=True)),
        "ncf": (runs["ncf"], ExportConfig(k=K)),
        "ncf-seen": (runs["ncf"], ExportConfig(k=K, exclude_seen=True)),
        "ncf-unfolded": (runs["ncf"], ExportConfig(k=K, fold=False)),
        "bpr-scores": (runs["bpr"], ExportConfig(k=K, scores_only=True, validate=False)),
    }
    for name, (run, config) in plan.items():
        export_run(run, root / name, config)
    return {name: root / name for name in plan}


def _reference(run_dir: Path, users: np.ndarray, exclude_seen: bool) -> np.ndarray:
    """[batch, n_items] PyTorch scores of the trained model, training items -inf if asked."""
    run = open_run(run_dir)
    model = run.load_model()
    with torch.no_grad():
        scores = model.score_all(torch.from_numpy(users)).numpy().astype(np.float64)
    if exclude_seen:
        train = run.load_dataset().train
        for row, user in enumerate(users):
            scores[row, train.items[train.users == user]] = -np.inf
    return scores


def _train_items(run_dir: Path) -> dict[int, set[int]]:
    train = open_run(run_dir).load_dataset().train
    seen: dict[int, set[int]] = {}
    for user, item in zip(train.users.tolist(), train.items.tolist(), strict=True):
        seen.setdefault(user, set()).add(item)
    return seen


# --- parity with PyTorch ------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["bpr", "bpr-seen", "ncf", "ncf-seen", "ncf-unfolded"])
@pytest.mark.parametrize("batch", [1, 3, 64])
def test_onnxruntime_returns_pytorchs_top_k(bundles, runs, name, batch):
    bundle = Bundle.open(bundles[name])
    users = np.random.default_rng(batch).permutation(bundle.n_users)[:batch]
    items, scores = bundle.recommend(users)
    assert items.shape == scores.shape == (batch, K)
    assert items.dtype == np.int64 and scores.dtype == np.float32

    reference = _reference(runs[name.split("-")[0]], users, exclude_seen="seen" in name)
    best = -np.sort(-reference, axis=1)[:, :K]
    # Rank by rank, the values match PyTorch's top k (robust to ties between items) ...
    np.testing.assert_allclose(scores, best, atol=1e-4)
    # ... and each returned item really has the score returned with it.
    np.testing.assert_allclose(np.take_along_axis(reference, items, axis=1), scores, atol=1e-4)


def test_scores_only_graph_returns_every_score(bundles, runs):
    bundle = Bundle.open(bundles["bpr-scores"])
    users = np.arange(5)
    scores = bundle.scores(users)
    assert scores.shape == (5, bundle.n_items)
    np.testing.assert_allclose(scores, _reference(runs["bpr"], users, False), atol=1e-4)
    items, top = bundle.recommend(users)
    np.testing.assert_allclose(top, -np.sort(-scores, axis=1)[:, :K], atol=0)
    with pytest.raises(BundleError, match="--scores-only"):
        Bundle.open(bundles["bpr"]).scores(users)
    assert bundle.manifest["validation"] == {"passed": None, "skipped": True, "checks": []}
    assert bundle.manifest["graph"]["outputs"][0]["shape"] == ["batch", bundle.n_items]


def test_folding_keeps_ncf_scores_and_drops_the_item_tower(bundles):
    folded, unfolded = Bundle.open(bundles["ncf"]), Bundle.open(bundles["ncf-unfolded"])
    users = np.arange(folded.n_users)
    np.testing.assert_allclose(folded.recommend(users)[1], unfolded.recommend(users)[1], atol=1e-5)
    # The folded graph has no Concat (user and item embeddings never meet before the tower).
    ops = {node.op_type for node in onnx.load(str(folded.model_path)).graph.node}
    assert "Concat" not in ops
    assert "Concat" in {n.op_type for n in onnx.load(str(unfolded.model_path)).graph.node}


# --- seen items and out-of-range users ----------------------------------------------------------


@pytest.mark.parametrize("name", ["bpr-seen", "ncf-seen"])
def test_exclude_seen_never_returns_a_training_item(bundles, runs, name):
    seen = _train_items(runs[name.split("-")[0]])
    bundle = Bundle.open(bundles[name])
    items, scores = bundle.recommend(np.arange(bundle.n_users))
    for user, row in enumerate(items):
        assert not set(row.tolist()) & seen.get(user, set())
    assert np.isfinite(scores).all()


def test_without_exclusion_training_items_do_appear(bundles, runs):
    # The counterpart of the test above: it would pass vacuously if no model ranked seen items.
    seen = _train_items(runs["bpr"])
    bundle = Bundle.open(bundles["bpr"])
    items, _ = bundle.recommend(np.arange(bundle.n_users))
    assert sum(len(set(row.tolist()) & seen.get(u, set())) for u, row in enumerate(items)) > 0


@pytest.mark.parametrize("name", ["bpr-seen", "ncf"])
def test_out_of_range_users_get_sentinel_rows_in_the_graph(bundles, name):
    bundle = Bundle.open(bundles[name])
    session = open_session(bundle.model_path)
    n = bundle.n_users
    users = np.array([-1, n, 5, -n - 1, 10**12, n - 1], dtype=np.int64)
    items, scores = session.run(None, {"user": users})

    bad = [0, 1, 3, 4]
    assert (items[bad] == -1).all() and np.isneginf(scores[bad]).all()
    good_items, good_scores = bundle.recommend(np.array([5, n - 1]))
    np.testing.assert_array_equal(items[[2, 5]], good_items)
    np.testing.assert_allclose(scores[[2, 5]], good_scores)


def test_reader_refuses_out_of_range_users_and_unknown_ids(bundles):
    bundle = Bundle.open(bundles["bpr"])
    with pytest.raises(BundleError, match="out of range"):
        bundle.recommend(np.array([0, bundle.n_users]))
    with pytest.raises(BundleError, match="out of range"):
        bundle.recommend(np.array([-1]))
    with pytest.raises(BundleError, match="1-D integer"):
        bundle.recommend(np.array([0.5]))
    with pytest.raises(BundleError, match="not in this bundle"):
        bundle.user_index("no-such-user")
    raw = bundle.users[7]
    assert bundle.user_index(raw) == 7
    session = bundle.session(threads=2, arena=False)
    assert session.get_session_options().intra_op_num_threads == 2
    with pytest.raises(BundleError, match="threads"):
        bundle.session(threads=0)
    assert bundle.item_ids(np.array([[0, 1]])) == bundle.items[:2]


# --- the bundle and its manifest ----------------------------------------------------------------


def test_manifest_records_the_model_file_and_its_origin(bundles, runs):
    path = bundles["ncf-seen"]
    manifest = json.loads((path / "manifest.json").read_text())
    model_bytes = (path / "model.onnx").read_bytes()
    assert manifest["file"]["sha256"] == hashlib.sha256(model_bytes).hexdigest()
    assert manifest["file"]["bytes"] == len(model_bytes)

    run = open_run(runs["ncf"])
    assert manifest["model"]["kind"] == "ncf" and manifest["model"]["dim"] == 8
    assert manifest["model"]["params"] == run.load_model().n_params()
    assert manifest["dataset"]["fingerprint"] == run.dataset["fingerprint"]
    assert manifest["lineage"]["run"] == str(runs["ncf"].resolve())
    assert manifest["lineage"]["teacher"] is None and manifest["quantization"] is None
    assert (manifest["n_users"], manifest["n_items"]) == (120, run.dataset["items"])
    assert manifest["k"] == K
    assert manifest["seen_mask"]["bytes"] == 120 * ((run.dataset["items"] + 7) // 8)
    assert [i["name"] for i in manifest["graph"]["inputs"]] == ["user"]
    assert [o["name"] for o in manifest["graph"]["outputs"]] == ["items", "scores"]
    assert manifest["graph"]["outputs"][0]["shape"][1] == K
    assert manifest["validation"]["passed"] is True
    assert {c["name"] for c in manifest["validation"]["checks"]} >= {
        "fp32 onnx checker",
        "fp32 max |Δscore| vs PyTorch",
        f"fp32 top-{K} agreement vs PyTorch",
    }
    id_map = json.loads((path / manifest["id_map"]).read_text())
    assert id_map == json.loads((runs["ncf"] / "id_map.json").read_text())
    # One self-contained model file: no external data beside it.
    names = sorted(p.name for p in path.iterdir())
    assert names == ["evalset.npz", "id_map.json", "manifest.json", "model.onnx"]
    masked, held_out = load_evalset(path / manifest["evalset"])
    test = run.load_dataset().test
    assert held_out.items.size == len(test)
    assert sorted(held_out.gather(np.array([3]))[1].tolist()) == sorted(
        test.items[test.users == 3].tolist()
    )


def test_reader_refuses_a_damaged_or_foreign_bundle(bundles, tmp_path):
    def copy() -> Path:
        target = tmp_path / f"copy{len(list(tmp_path.iterdir()))}"
        shutil.copytree(bundles["bpr"], target)
        return target

    flipped = copy()
    data = bytearray((flipped / "model.onnx").read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, other content
    (flipped / "model.onnx").write_bytes(bytes(data))
    with pytest.raises(BundleError, match="sha256"):
        Bundle.open(flipped)

    wrong_hash = copy()
    manifest = json.loads((wrong_hash / "manifest.json").read_text())
    manifest["file"]["sha256"] = "0" * 64
    (wrong_hash / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="sha256"):
        Bundle.open(wrong_hash)

    newer = copy()
    manifest = json.loads((newer / "manifest.json").read_text())
    manifest["format_version"] = 99
    (newer / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="format version 99"):
        Bundle.open(newer)

    no_manifest = copy()
    (no_manifest / "manifest.json").unlink()
    with pytest.raises(BundleError, match="no manifest.json"):
        Bundle.open(no_manifest)

    broken = copy()
    (broken / "manifest.json").write_text("{not json")
    with pytest.raises(BundleError, match="not valid JSON"):
        Bundle.open(broken)


def test_reader_imports_no_torch_and_no_cli():
    code = (
        "import sys, edgerec.runtime.bundle; "
        "print(sorted({'torch', 'pandas', 'onnx', 'typer', 'rich'} & set(sys.modules)))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_failed_validation_writes_no_bundle_and_keeps_the_previous_one(runs, bundles, tmp_path):
    out = tmp_path / "bundle"
    shutil.copytree(bundles["bpr"], out)
    before = (out / "model.onnx").read_bytes()
    reported = []
    impossible = validate.Thresholds(fp32_max_delta=-1.0, fp32_agreement=1.5)
    with pytest.raises(ValidationError) as caught:
        export_run(
            runs["bpr"],
            out,
            ExportConfig(k=K, exclude_seen=True),
            thresholds=impossible,
            on_check=reported.append,
        )
    assert len(caught.value.failures) == 2  # both failures in one error
    assert any("max |Δscore|" in f for f in caught.value.failures)
    assert any("agreement" in f for f in caught.value.failures)
    assert [c.name for c in reported][0] == "fp32 onnx checker" and len(reported) == 3
    assert (out / "model.onnx").read_bytes() == before  # the old bundle, untouched
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging left


def test_export_refuses_to_replace_what_is_not_a_bundle(runs, tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ExportError, match="not empty and holds no bundle"):
        export_run(runs["bpr"], tmp_path, ExportConfig(k=K))
    with pytest.raises(ExportError, match="run directory"):
        export_run(runs["bpr"], runs["bpr"], ExportConfig(k=K))
    with pytest.raises(ExportError, match="exceeds the catalogue"):
        export_run(runs["bpr"], tmp_path / "new", ExportConfig(k=10_000))
    assert (tmp_path / "notes.txt").read_text() == "mine"


# --- validation catches a wrong model -----------------------------------------------------------


def _perturbed(src: Path, dst: Path, name_part: str, scale: float) -> Path:
    model = onnx.load(str(src))
    for init in model.graph.initializer:
        if name_part in init.name:
            values = numpy_helper.to_array(init)
            noise = np.random.default_rng(0).standard_normal(values.shape).astype(values.dtype)
            init.CopyFrom(numpy_helper.from_array(values + scale * noise, init.name))
            break
    else:
        raise AssertionError(f"no initializer named like {name_part}")
    onnx.save(model, str(dst))
    return dst


def test_validation_fails_loudly_on_a_corrupted_fp32_model(bundles, runs, tmp_path):
    run = open_run(runs["bpr"])
    corrupted = _perturbed(
        bundles["bpr"] / "model.onnx", tmp_path / "bad.onnx", "item_embedding", 1.0
    )
    checks = validate.check_fp32(
        corrupted, run.load_model(), run.load_dataset(), K, False, validate.Thresholds()
    )
    failed = {c.name for c in checks if not c.passed}
    assert failed == {"fp32 max |Δscore| vs PyTorch", f"fp32 top-{K} agreement vs PyTorch"}
    with pytest.raises(ValidationError) as caught:
        validate.raise_if_failed(checks)
    assert len(caught.value.failures) == 2
    assert "max |Δscore| vs PyTorch" in str(caught.value)

    # The untouched file passes the same checks.
    good = validate.check_fp32(
        bundles["bpr"] / "model.onnx",
        run.load_model(),
        run.load_dataset(),
        K,
        False,
        validate.Thresholds(),
    )
    assert all(c.passed for c in good)


def test_validation_fails_on_a_corrupted_int8_model(bundles, runs, tmp_path):
    fp32 = bundles["bpr"] / "model.onnx"
    quantized = tmp_path / "q.onnx"
    quantize_model(fp32, quantized, QuantConfig(), np.arange(120))
    dataset = open_run(runs["bpr"]).load_dataset()
    _checks = validate.check_int8(quantized, fp32, dataset, K, validate.Thresholds())
    assert all(c.passed for c in _checks), [c.describe() for c in _checks]

    # Shuffle the columns (items) of the int8 item table: the same values, wrong items.
    model = onnx.load(str(quantized))
    table = next(
        i for i in model.graph.initializer if i.name.endswith("item_embedding_t_quantized")
    )
    values = np.random.default_rng(1).permutation(numpy_helper.to_array(table), axis=1)
    table.CopyFrom(numpy_helper.from_array(values, table.name))
    bad = tmp_path / "bad.onnx"
    onnx.save(model, str(bad))
    checks = validate.check_int8(bad, fp32, dataset, K, validate.Thresholds())
    assert checks[0].passed  # still a well-formed model: only the comparisons can tell
    assert not next(c for c in checks if "agreement" in c.name).passed
    with pytest.raises(ValidationError, match="int8 top-10 agreement"):
        validate.raise_if_failed(checks)


def test_checker_failure_is_a_failed_check(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    check = validate.check_model_file(bad, "fp32")
    assert not check.passed and check.detail


# --- quantization -------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def big_bpr(tmp_path_factory) -> Path:
    """A BPR run whose bytes are nearly all embedding tables: 3000 users, 1500 items, dim 16."""
    data = DataConfig(synthetic=SyntheticConfig(n_users=3000, n_items=1500, mean_interactions=8))
    return _train(tmp_path_factory.mktemp("big"), "bpr", data, dim=16, epochs=1)


def test_int8_shrinks_an_embedding_dominated_model_below_30_percent(big_bpr, tmp_path):
    fp32 = export_run(big_bpr, tmp_path / "fp32", ExportConfig(k=K))
    int8 = export_run(big_bpr, tmp_path / "int8", ExportConfig(k=K, quant=QuantConfig()))
    tables = 4 * 16 * (fp32["n_users"] + fp32["n_items"])
    assert tables < fp32["file"]["bytes"] < 1.05 * tables  # embedding-dominated, in the file
    assert int8["file"]["bytes"] <= 0.30 * fp32["file"]["bytes"]
    assert int8["validation"]["passed"] is True
    assert int8["quantization"]["mode"] == "dynamic"
    assert int8["quantization"]["config"] == {
        "mode": "dynamic",
        "preset": "x86-avx2",
        "per_channel": False,
        "calibration": None,
        "calibration_users": None,
    }
    # Both tables became 8-bit: no float initializer of table size is left.
    model = onnx.load(str(tmp_path / "int8" / "model.onnx"))
    floats = [i for i in model.graph.initializer if i.data_type == onnx.TensorProto.FLOAT]
    assert max((int(np.prod(i.dims)) for i in floats), default=0) < fp32["n_items"]


QUANT_CASES = [
    (mode, preset, False) for mode in ("dynamic", "static", "weights-only") for preset in PRESETS
] + [(mode, "x86-vnni", True) for mode in ("dynamic", "static", "weights-only")]
EXPECTED_OPS = {
    "dynamic": "MatMulInteger",
    "static": "QuantizeLinear",
    "weights-only": "MatMulNBits",
}


@pytest.mark.parametrize("source", ["bpr-seen", "ncf", "ncf-unfolded"])
@pytest.mark.parametrize(("mode", "preset", "per_channel"), QUANT_CASES)
def test_every_quant_mode_and_preset_loads_and_runs(
    bundles, source, mode, preset, per_channel, tmp_path
):
    fp32 = bundles[source] / "model.onnx"
    out = tmp_path / "q.onnx"
    config = QuantConfig(mode=mode, preset=preset, per_channel=per_channel)
    settings = quantize_model(fp32, out, config, np.arange(0, 120, 2))
    assert settings["mode"] == mode and settings["preset"] == preset

    assert EXPECTED_OPS[mode] in {node.op_type for node in onnx.load(str(out)).graph.node}
    users = np.array([0, 3, 7, 119, 200])
    items, scores = open_session(out).run(None, {"user": users})
    reference_items, _ = open_session(fp32).run(None, {"user": users})
    assert items.shape == (5, K) and (items[4] == -1).all()  # the range guard survives
    assert validate.topk_agreement(items[:4], reference_items[:4]) >= 0.6
    if source == "bpr-seen":
        assert out.stat().st_size < fp32.stat().st_size


@pytest.mark.parametrize("method", ["entropy", "percentile"])
def test_static_calibration_methods(bundles, method, tmp_path):
    fp32 = bundles["ncf"] / "model.onnx"
    out = tmp_path / "q.onnx"
    settings = quantize_model(
        fp32, out, QuantConfig(mode="static", calibration=method), np.arange(0, 120, 3)
    )  # 40 users: batches of 20
    assert settings["calibration"] == method
    items, _ = open_session(out).run(None, {"user": np.arange(10)})
    reference, _ = open_session(fp32).run(None, {"user": np.arange(10)})
    assert validate.topk_agreement(items, reference) >= 0.6


def test_quant_config_refuses_what_it_cannot_do():
    with pytest.raises(ConfigError, match="mode 'fp16'"):
        QuantConfig(mode="fp16")
    with pytest.raises(ConfigError, match="target 'riscv'"):
        QuantConfig(preset="riscv")
    with pytest.raises(ConfigError, match="static quantization only"):
        QuantConfig(mode="dynamic", calibration="entropy")
    with pytest.raises(ConfigError, match="calibration_users"):
        QuantConfig(mode="static", calibration_users=0)
    with pytest.raises(ConfigError, match="opset <= 20"):
        ExportConfig(opset=21, quant=QuantConfig(mode="static"))
    with pytest.raises(ConfigError, match="k must be"):
        ExportConfig(k=0)
    assert QuantConfig(mode="static").calibration_method == "minmax"


def test_presets_follow_onnxruntimes_saturation_guidance():
    # Without VNNI, U8S8 saturates: either 7-bit weights or uint8 weights (U8U8).
    for name in ("x86-avx2", "x86-avx512"):
        preset = PRESETS[name]
        assert preset.reduce_range or preset.dynamic_weights == "uint8"
    for name in ("x86-vnni", "arm64"):
        preset = PRESETS[name]
        assert not preset.reduce_range and preset.dynamic_weights == "int8"
        assert (preset.static_activations, preset.static_weights) == ("int8", "int8")


# --- the CLI ------------------------------------------------------------------------------------


def test_cli_exports_an_int8_bundle(runs, tmp_path):
    from typer.testing import CliRunner

    from edgerec.cli.app import app

    out = tmp_path / "bundle"
    result = CliRunner().invoke(
        app,
        ["export", str(runs["ncf"]), "--out", str(out), "--int8", "--k", str(K), "--exclude-seen"],
    )
    assert result.exit_code == 0, result.output
    manifest = Bundle.open(out).manifest
    assert manifest["quantization"]["mode"] == "dynamic"
    assert manifest["exclude_seen"] is True and manifest["validation"]["passed"] is True
    assert manifest["file"]["sha256"][:12] in result.output
    assert "✓ int8 top-10 agreement" in result.output


def _edgerec(*args):
    return subprocess.run(
        [sys.executable, "-m", "edgerec.cli.app", *map(str, args)], capture_output=True, text=True
    )


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        ([], "is not a finished run"),
        (["--calibration", "entropy", "--int8"], "--static only"),
        (["--per-channel"], "add --int8"),
        (["--static", "--weights-only"], "choose one"),
    ],
)
def test_cli_errors_are_one_line_and_exit_2(tmp_path, runs, args, fragment):
    run_dir = tmp_path if not args else runs["bpr"]
    result = _edgerec("export", run_dir, "--out", tmp_path / "out", *args)
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0]
    assert not (tmp_path / "out").exists()
