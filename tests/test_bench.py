"""`edgerec bench` and its torch-free core: rows, floor, memory, accuracy, MACs, errors, Pareto."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgerec.runtime import bench as core

K = 10
LATENCY = ("p50", "p90", "p99", "mean")
# Every row's keys and the types each may take (None where a value does not apply).
ROW_TYPES = {
    "model": str,
    "path": (str, type(None)),
    "runtime": str,
    "device": str,
    "emulated": bool,
    "precision": (str, type(None)),
    "batch": int,
    "threads": int,
    "arena": bool,
    "warmup": int,
    "runs": int,
    "latency_ms": dict,
    "throughput": float,
    "session_ms": float,
    "floor_p50_ms": float,
    "x_floor": float,
    "vs_torch": (float, type(None)),
    "peak_rss_mb": (float, type(None)),
    "baseline_rss_mb": (float, type(None)),
    "rss_delta_mb": (float, type(None)),
    "model_bytes": int,
    "macs": (int, type(None)),
    "k": int,
    f"recall@{K}": (float, type(None)),
    f"ndcg@{K}": (float, type(None)),
    "accuracy_note": (str, type(None)),
}


def edgerec(*args):
    return subprocess.run(
        [sys.executable, "-m", "edgerec.cli.app", *map(str, args)], capture_output=True, text=True
    )


def assert_one_line_error(result, *fragments):
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A trained BPR run on tiny synthetic data and three exports of it."""
    from edgerec.data.config import DataConfig
    from edgerec.data.synthetic import SyntheticConfig
    from edgerec.export.config import ExportConfig
    from edgerec.export.job import export_run
    from edgerec.models.config import ModelConfig
    from edgerec.train.config import TrainConfig
    from edgerec.train.job import train_run
    from edgerec.train.rundir import RunConfig

    root = tmp_path_factory.mktemp("bench")
    data = DataConfig(
        synthetic=SyntheticConfig(n_users=200, n_items=300, rank=8, mean_interactions=15)
    )
    config = RunConfig(
        data=data,
        model=ModelConfig(name="bpr", dim=8),
        train=TrainConfig(epochs=3, lr=0.01),
    )
    metrics = train_run(config, root / "run")
    exports = {
        # TopK inside, seen items excluded: top 20 leaves room for each user's validation items.
        "topk": ExportConfig(k=20, exclude_seen=True),
        "scores": ExportConfig(scores_only=True),
        # TopK inside, nothing excluded, export k = metric K: no room for any masked item.
        "tight": ExportConfig(k=K),
    }
    for name, export_config in exports.items():
        export_run(root / "run", root / name, export_config)
    return {"root": root, "run": root / "run", "metrics": metrics, **{n: root / n for n in exports}}


@pytest.fixture(scope="module")
def cli_result(tiny):
    out = tiny["root"] / "results"
    result = edgerec(
        "bench", tiny["topk"], tiny["scores"], "--threads", "1", "--batch", "1,4",
        "--warmup", "2", "--runs", "20", "--k", K, "--out", out, "--json", "--plot",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return {"out": out, "stdout": json.loads(result.stdout), "stderr": result.stderr}


def test_cli_writes_rows_with_every_key(cli_result):
    saved = json.loads((cli_result["out"] / "bench.json").read_text())
    assert saved["rows"] == cli_result["stdout"]["rows"]
    assert saved["config"]["batches"] == [1, 4] and saved["config"]["k"] == K
    assert {"cpu", "flags", "logical_cores", "versions"} <= set(saved["machine"])

    rows = saved["rows"]
    assert len(rows) == 2 * 3  # (floor + 2 exports) x 2 batch sizes x 1 thread count
    for row in rows:
        assert set(row) == set(ROW_TYPES), set(row) ^ set(ROW_TYPES)
        for key, kinds in ROW_TYPES.items():
            assert isinstance(row[key], kinds), (key, row[key])
        latency = row["latency_ms"]
        assert set(latency) == set(LATENCY)
        assert 0 < latency["p50"] <= latency["p90"] <= latency["p99"]
        assert row["throughput"] == pytest.approx(row["batch"] * 1000 / latency["mean"])

    models = [r for r in rows if r["model"] != "floor"]
    assert {r["model"] for r in models} == {"topk", "scores"}
    for row in models:
        assert row["runtime"] == "onnxruntime" and row["precision"] == "fp32"
        assert row["peak_rss_mb"] > row["baseline_rss_mb"] > 0
        assert row["rss_delta_mb"] == pytest.approx(row["peak_rss_mb"] - row["baseline_rss_mb"])
        assert row["model_bytes"] == (Path(row["path"]) / "model.onnx").stat().st_size
        n_items = json.loads((Path(row["path"]) / "manifest.json").read_text())["n_items"]
        assert row["macs"] == 8 * n_items  # BPR: one dot product of dim 8 per item
        assert row["x_floor"] == pytest.approx(row["latency_ms"]["p50"] / row["floor_p50_ms"])


def test_csv_and_config_beside_the_json(cli_result):
    from edgerec.bench.report import read_config

    header = (cli_result["out"] / "bench.csv").read_text().splitlines()[0].split(",")
    assert {"latency_p50_ms", "latency_p99_ms", "peak_rss_mb", f"recall@{K}"} <= set(header)
    config = read_config(cli_result["out"] / "config.json")
    assert config.batches == (1, 4) and config.threads == (1,) and config.runs == 20


def test_floor_row_exists_and_is_faster_than_the_model(cli_result):
    rows = cli_result["stdout"]["rows"]
    for batch in (1, 4):
        floor = next(r for r in rows if r["model"] == "floor" and r["batch"] == batch)
        assert floor["path"] is None and floor["x_floor"] == 1.0
        assert floor["model_bytes"] == len(core.FLOOR_MODEL)
        for row in (r for r in rows if r["model"] != "floor" and r["batch"] == batch):
            assert row["floor_p50_ms"] == floor["latency_ms"]["p50"]
            # Gather, MatMul over the catalogue and TopK against one Identity node.
            assert floor["latency_ms"]["p50"] < row["latency_ms"]["p50"]


def test_onnx_accuracy_equals_training_test_metrics(cli_result, tiny):
    trained = tiny["metrics"]["test"]
    for row in (r for r in cli_result["stdout"]["rows"] if r["model"] != "floor"):
        assert row["accuracy_note"] is None
        assert row[f"recall@{K}"] == pytest.approx(trained[f"recall@{K}"], abs=1e-6)
        assert row[f"ndcg@{K}"] == pytest.approx(trained[f"ndcg@{K}"], abs=1e-6)


def test_plot_or_one_line_why_not(cli_result):
    from edgerec.bench.plot import LATENCY as LATENCY_PNG
    from edgerec.bench.plot import SIZE, available

    if available():
        assert (cli_result["out"] / LATENCY_PNG).is_file() and (cli_result["out"] / SIZE).is_file()
    else:
        notes = [line for line in cli_result["stderr"].splitlines() if "matplotlib" in line]
        assert len(notes) == 1 and "edgerec[plot]" in notes[0]


def test_against_torch_same_users_and_ratio(tiny):
    from edgerec.bench.config import BenchConfig
    from edgerec.bench.run import expected_rows, run_bench

    config = BenchConfig(
        exports=(str(tiny["topk"]),), batches=(3,), threads=(1,), warmup=1, runs=5, k=K,
        memory=False, against_torch=True,
    )  # fmt: skip
    result = run_bench(config)
    assert len(result.rows) == expected_rows(config) == 3
    onnx, eager = result.rows[1], result.rows[2]
    assert (onnx["runtime"], eager["runtime"]) == ("onnxruntime", "torch")
    assert onnx["vs_torch"] == pytest.approx(onnx["latency_ms"]["p50"] / eager["latency_ms"]["p50"])
    assert eager["path"] == str(tiny["run"]) and eager["peak_rss_mb"] is None
    trained = tiny["metrics"]["test"]
    assert eager[f"recall@{K}"] == pytest.approx(trained[f"recall@{K}"], abs=1e-6)


def test_eager_model_computes_what_the_export_returns(tiny):
    import torch

    from edgerec.bench.eager import EagerRecommender, train_pairs
    from edgerec.runtime.bundle import Bundle
    from edgerec.train.rundir import open_run

    bundle = Bundle.open(tiny["topk"])
    run = open_run(tiny["run"])
    reference = EagerRecommender.load(run, bundle.manifest, train_pairs(run.load_dataset()))
    users = np.arange(0, bundle.n_users, 7, dtype=np.int64)
    with torch.inference_mode():
        _, eager_items = reference(torch.from_numpy(users))
    onnx_items, _ = bundle.recommend(users)
    assert (eager_items.numpy() == onnx_items).mean() > 0.99  # float ties may swap neighbours


def test_eager_memory_in_a_fresh_process(tiny):
    from edgerec.bench.eager import eager_memory

    memory = eager_memory(tiny["run"], tiny["topk"], batch=2, threads=1)
    assert memory.peak_mb > memory.baseline_mb > 0


def _table_model(path: Path, n_users: int, n_items: int, dim: int) -> int:
    """user [batch] -> Gather of a [n_users, dim] table -> MatMul with [dim, n_items]."""
    from onnx import TensorProto, helper, numpy_helper, save

    rng = np.random.default_rng(0)
    tables = [
        numpy_helper.from_array(rng.standard_normal(shape, dtype=np.float32), name)
        for name, shape in (("users", (n_users, dim)), ("items_t", (dim, n_items)))
    ]
    graph = helper.make_graph(
        [
            helper.make_node("Gather", ["users", "user"], ["embedding"]),
            helper.make_node("MatMul", ["embedding", "items_t"], ["scores"]),
        ],
        "tables",
        [helper.make_tensor_value_info("user", TensorProto.INT64, ["batch"])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["batch", n_items])],
        tables,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    save(model, str(path))
    return (n_users + n_items) * dim * 4  # float32 bytes of both tables


def test_memory_sees_a_large_model_against_a_small_one(tmp_path):
    small_bytes = _table_model(tmp_path / "small.onnx", 200, 200, 8)
    large_bytes = _table_model(tmp_path / "large.onnx", 50_000, 50_000, 64)
    small = core.session_memory(tmp_path / "small.onnx", 200, batch=1, threads=1, arena=True)
    large = core.session_memory(tmp_path / "large.onnx", 200, batch=1, threads=1, arena=True)

    # The large tables (24 MiB) must be resident at least once; the small ones are 12 kB.
    table_mib = (large_bytes - small_bytes) / 2**20
    assert large.delta_mb - small.delta_mb > 0.75 * table_mib
    assert abs(large.baseline_mb - small.baseline_mb) < 0.25 * table_mib  # the same imports


def test_macs_count_products_and_multiplies(tmp_path):
    from onnx import TensorProto, helper, numpy_helper, save

    from edgerec.bench.macs import count_macs, macs_by_op

    n_users, n_items, dim = 30, 40, 6
    rng = np.random.default_rng(1)
    inits = [
        numpy_helper.from_array(rng.standard_normal((n_users, dim), dtype=np.float32), "users"),
        numpy_helper.from_array(rng.standard_normal((n_items, dim), dtype=np.float32), "items"),
        numpy_helper.from_array(rng.standard_normal(n_items, dtype=np.float32), "weights"),
    ]
    nodes = [
        helper.make_node("Gather", ["users", "user"], ["embedding"]),
        helper.make_node("Gemm", ["embedding", "items"], ["dots"], transB=1),
        helper.make_node("Mul", ["dots", "weights"], ["scores"]),
    ]
    graph = helper.make_graph(
        nodes,
        "macs",
        [helper.make_tensor_value_info("user", TensorProto.INT64, ["batch"])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["batch", n_items])],
        inits,
    )
    path = tmp_path / "m.onnx"
    save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), path)
    assert macs_by_op(path) == {"Gemm": dim * n_items, "Mul": n_items}
    assert count_macs(path) == dim * n_items + n_items


def test_topk_accuracy_is_none_exactly_when_masked_items_crowd_the_top_k(tiny):
    import torch

    from edgerec.evaluate.metrics import split_csr
    from edgerec.runtime.bundle import Bundle
    from edgerec.train.rundir import open_run

    run = open_run(tiny["run"])
    dataset = run.load_dataset()
    masked, held_out = split_csr(dataset, "test")
    bundle = Bundle.open(tiny["tight"])
    accuracy = core.bundle_accuracy(bundle, bundle.session(), masked, held_out, K)

    # The known answer: a user's top k is unknown when PyTorch's top K holds a masked item.
    users = np.nonzero(held_out.lengths(np.arange(dataset.n_users)) > 0)[0]
    with torch.no_grad():
        top = torch.topk(run.load_model().score_all(torch.from_numpy(users)), K).indices.numpy()
    rows, items = masked.gather(users)
    seen = np.zeros((len(users), dataset.n_items), dtype=bool)
    seen[rows, items] = True
    crowded = int(np.take_along_axis(seen, top, axis=1).any(axis=1).sum())
    if crowded:
        assert accuracy.recall is None and accuracy.ndcg is None
        assert accuracy.note.startswith(f"{crowded} of {len(users)} users")
        assert "--exclude-seen" in accuracy.note
    else:
        assert accuracy.recall == pytest.approx(run.metrics["test"][f"recall@{K}"], abs=1e-6)

    beyond = core.bundle_accuracy(bundle, bundle.session(), masked, held_out, K + 1)
    assert beyond.recall is None and f"top {K}" in beyond.note


def test_runtime_core_alone_gives_the_same_rows(tiny, tmp_path):
    from edgerec.evaluate.metrics import split_csr
    from edgerec.runtime.evalset import save_evalset
    from edgerec.train.rundir import open_run

    evalset = tmp_path / "evalset.npz"
    save_evalset(evalset, *split_csr(open_run(tiny["run"]).load_dataset(), "test"))
    out = tmp_path / "rows.json"
    command = [sys.executable, "-m", "edgerec.runtime.bench", "run", str(tiny["topk"]),
               "--evalset", str(evalset), "--batch", "2", "--threads", "1", "--warmup", "1",
               "--runs", "5", "--no-memory", "--out", str(out)]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr

    rows = json.loads(out.read_text())["rows"]
    assert [r["model"] for r in rows] == ["floor", "topk"]
    assert all(set(r) == set(ROW_TYPES) for r in rows)
    assert rows[1]["macs"] is None  # counting needs onnx: the host fills it
    trained = tiny["metrics"]["test"]
    assert rows[1][f"ndcg@{K}"] == pytest.approx(trained[f"ndcg@{K}"], abs=1e-6)


def test_runtime_modules_import_no_host_library():
    code = (
        "import sys, edgerec.runtime.bench, edgerec.runtime.evalset; "
        "print(sorted({'torch', 'pandas', 'onnx', 'typer', 'rich'} & set(sys.modules)))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "[]", result.stderr


def test_floor_model_is_what_onnx_helper_builds_and_runs():
    from onnx import TensorProto, helper

    def io(name):
        return helper.make_tensor_value_info(name, TensorProto.INT64, ["batch"])

    graph = helper.make_graph(
        [helper.make_node("Identity", ["user"], ["out"])],
        "edgerec_floor",
        [io("user")],
        [io("out")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    assert model.SerializeToString() == core.FLOOR_MODEL

    session = core.open_session(core.FLOOR_MODEL)
    users = np.array([3, 1, 4], dtype=np.int64)
    np.testing.assert_array_equal(session.run(None, {"user": users})[0], users)


def test_evalset_round_trip_narrows_to_int32(tmp_path):
    from edgerec.errors import DataError
    from edgerec.runtime.evalset import load_evalset, save_evalset
    from edgerec.runtime.metrics import CSR

    masked = CSR(np.array([0, 0, 2]), np.array([5, 1, 7]), n_users=3)
    held_out = CSR(np.array([1, 2]), np.array([2, 3]), n_users=3)
    save_evalset(tmp_path / "e.npz", masked, held_out)
    with np.load(tmp_path / "e.npz") as saved:
        assert saved["masked_items"].dtype == np.int32
    loaded_masked, loaded_held = load_evalset(tmp_path / "e.npz")
    for original, loaded in ((masked, loaded_masked), (held_out, loaded_held)):
        np.testing.assert_array_equal(original.indptr, loaded.indptr)
        np.testing.assert_array_equal(original.items, loaded.items)

    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="bad.npz"):
        load_evalset(tmp_path / "bad.npz")


def test_pareto_front_on_a_hand_made_table():
    from edgerec.bench.pareto import frontier_rows, pareto_front

    # (latency, recall): b beats a on both; c is slower but better; d ties c's recall, slower;
    # e is c again (both stay); f is fastest and worst.
    costs = [2.0, 1.5, 3.0, 4.0, 3.0, 0.5]
    values = [0.20, 0.25, 0.30, 0.30, 0.30, 0.10]
    assert pareto_front(costs, values) == [5, 1, 2, 4]
    assert pareto_front([], []) == []

    rows = [{"ms": c, "recall": v} for c, v in zip(costs, values, strict=True)]
    rows.append({"ms": 0.1, "recall": None})  # no accuracy: not a point
    front = frontier_rows(rows, lambda r: r["ms"], "recall")
    assert [r["ms"] for r in front] == [0.5, 1.5, 3.0, 3.0]


def test_parse_cpuinfo_x86_and_arm():
    from edgerec.bench.machine import parse_cpuinfo

    x86 = (
        "processor\t: 0\nmodel name\t: Some Xeon\nphysical id\t: 0\ncore id\t: 0\n"
        "flags\t\t: fpu sse4_2 avx2 avx512f avx512_vnni\n\n"
        "processor\t: 1\nmodel name\t: Some Xeon\nphysical id\t: 0\ncore id\t: 0\n"
        "flags\t\t: fpu sse4_2 avx2 avx512f avx512_vnni\n"
    )
    assert parse_cpuinfo(x86) == {
        "cpu": "Some Xeon",
        "physical_cores": 1,  # two hyperthreads of one core
        "flags": ["sse4_2", "avx2", "avx512f", "avx512_vnni"],
    }
    arm = "processor\t: 0\nFeatures\t: fp asimd asimddp\nCPU part\t: 0xd0c\n"
    assert parse_cpuinfo(arm)["flags"] == ["asimd", "asimddp"]


def test_missing_export_is_one_line_and_exit_2(tmp_path):
    result = edgerec("bench", tmp_path / "nowhere", "--no-memory")
    assert_one_line_error(result, "nowhere", "does not exist")


@pytest.mark.parametrize("damage", ["sha256", "manifest"])
def test_corrupt_export_is_one_line_and_exit_2(tiny, tmp_path, damage):
    broken = tmp_path / "broken"
    shutil.copytree(tiny["scores"], broken)
    if damage == "sha256":
        model = broken / "model.onnx"
        data = bytearray(model.read_bytes())
        data[-1] ^= 0xFF  # same size, other bytes
        model.write_bytes(bytes(data))
        fragments = ["sha256", "changed or damaged"]
    else:
        (broken / "manifest.json").unlink()
        fragments = ["manifest.json"]
    result = edgerec("bench", broken, "--no-memory", "--out", tmp_path / "out")
    assert_one_line_error(result, str(broken), *fragments)
    assert not (tmp_path / "out").exists()  # refused before measuring anything


def test_bad_options_are_one_line_and_exit_2(tiny):
    assert_one_line_error(edgerec("bench", tiny["scores"], "--batch", "1,x"), "--batch", "1,x")


def test_host_bench_fills_accuracy_a_short_top_k_cannot_give(tiny, tmp_path):
    """The "tight" export returns only its top K with nothing excluded: the device-side core
    cannot know every user's masked top K, so the host ranks the graph's full scores."""
    result = edgerec(
        "bench",
        tiny["tight"],
        "--threads",
        "1",
        "--batch",
        "1",
        "--runs",
        "3",
        "--warmup",
        "1",
        "--no-memory",
        "--json",
        "--out",
        tmp_path / "out",
    )
    assert result.returncode == 0, result.stderr
    row = next(r for r in json.loads(result.stdout)["rows"] if r["model"] != "floor")
    trained = tiny["metrics"]["test"]
    assert row[f"recall@{K}"] == pytest.approx(trained[f"recall@{K}"], abs=1e-6)
    assert row[f"ndcg@{K}"] == pytest.approx(trained[f"ndcg@{K}"], abs=1e-6)
    assert "input of the graph's TopK" in row["accuracy_note"]
