"""The torch-free runtime's command line (`python -m edgerec.runtime`) and its one-file runner.

One tiny BPR run, trained on synthetic interactions written as a CSV with string ids (`u17`,
`i42`: raw ids that sort differently from their indices, so a raw/index mix-up shows), is
exported once through `edgerec export --bundle-runner`. Every command runs as a user would run
it, in a fresh interpreter, against the bundle's onnxruntime session and the PyTorch model.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from edgerec.errors import ExportError
from edgerec.export.runner import RUNNER, build_runner, runner_modules
from edgerec.runtime.bundle import Bundle

# Items served per user; the export keeps its top EXPORT_K, training items excluded, so that the
# evalset's Recall@K is defined (edgerec.runtime.bench.bundle_accuracy).
K, EXPORT_K = 10, 20
REPO = Path(__file__).resolve().parents[1]
BLOCKED = ("torch", "pandas", "onnx", "typer", "rich")


def runtime(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "edgerec.runtime", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
    )


def assert_one_line_error(result, *fragments):
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), lines[0]
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict:
    """A trained run on string-id interactions and its bundle, exported with a runner."""
    from edgerec.data.config import ColumnMap, DataConfig
    from edgerec.data.synthetic import SyntheticConfig, generate
    from edgerec.models.config import ModelConfig
    from edgerec.train.config import TrainConfig
    from edgerec.train.job import train_run
    from edgerec.train.rundir import RunConfig

    root = tmp_path_factory.mktemp("runtime")
    table = generate(SyntheticConfig(n_users=120, n_items=200, rank=8, mean_interactions=15))
    lines = [f"u{u},i{i},{t}" for u, i, t in table[["user", "item", "timestamp"]].itertuples(False)]
    (root / "log.csv").write_text("user,item,timestamp\n" + "\n".join(lines) + "\n")

    data = DataConfig(
        source=str(root / "log.csv"),
        format="csv",
        columns=ColumnMap(user="user", item="item", timestamp="timestamp"),
    )
    config = RunConfig(
        data=data, model=ModelConfig(name="bpr", dim=8), train=TrainConfig(epochs=3, lr=0.01)
    )
    train_run(config, root / "run")

    bundle = root / "bundle"
    command = [sys.executable, "-m", "edgerec.cli.app", "export", root / "run", "--out", bundle,
               "--k", EXPORT_K, "--exclude-seen", "--bundle-runner", "--json"]  # fmt: skip
    result = subprocess.run(list(map(str, command)), capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return {"root": root, "run": root / "run", "bundle": bundle}


def _torch_top_k(run_dir: Path, raw_users: list[str]) -> tuple[list[list[str]], np.ndarray]:
    """Raw item ids [users][K] and scores [users, K] of the PyTorch model, computed here, each
    user's training items left out."""
    import torch

    from edgerec.train.rundir import open_run

    run = open_run(run_dir)
    dataset = run.load_dataset()
    indices = [dataset.id_map.users.index(u) for u in raw_users]
    with torch.no_grad():
        scores = run.load_model().score_all(torch.tensor(indices)).numpy()  # [users, n_items]
    for row, user in enumerate(indices):
        scores[row, dataset.train.items[dataset.train.users == user]] = -np.inf
    id_map = dataset.id_map
    top = np.argsort(-scores, axis=1, kind="stable")[:, :K]
    items = [[id_map.items[i] for i in row] for row in top]
    return items, np.take_along_axis(scores, top, axis=1)


def _recommendations(result) -> dict[str, dict]:
    assert result.returncode == 0, result.stderr
    return {r["user"]: r for r in json.loads(result.stdout)["recommendations"]}


def _damage(bundle: Path, how: str) -> None:
    model = bundle / "model.onnx"
    if how == "sha256":
        data = bytearray(model.read_bytes())
        data[len(data) // 2] ^= 0xFF  # same size, other bytes
        model.write_bytes(bytes(data))
    elif how == "truncated":
        model.write_bytes(model.read_bytes()[: model.stat().st_size // 2])
    elif how == "manifest":
        (bundle / "manifest.json").unlink()
    elif how == "runner":
        with open(bundle / RUNNER, "ab") as f:
            f.write(b"\0")


# --- imports -------------------------------------------------------------------------------------


def test_runtime_imports_and_serves_with_host_libraries_blocked(tiny, tmp_path):
    """With torch, pandas, onnx, typer and rich unimportable, every runtime module imports and
    recommend and bench succeed: the runtime cannot lean on a library a device lacks."""
    bundle, out = tiny["bundle"], tmp_path / "rows.json"
    user = Bundle.open(bundle).users[0]
    code = textwrap.dedent(f"""
        import importlib, json, pkgutil, sys

        class Blocked:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in {BLOCKED!r}:
                    raise ModuleNotFoundError(f"{{name}} is blocked on this device")
                return None

        sys.meta_path.insert(0, Blocked())
        import edgerec.runtime
        names = sorted(m.name for m in pkgutil.iter_modules(edgerec.runtime.__path__))
        for name in names:
            importlib.import_module(f"edgerec.runtime.{{name}}")
        from edgerec.runtime.cli import main
        served = main(["recommend", {str(bundle)!r}, "--user", {user!r}, "--json"])
        benched = main(["bench", {str(bundle)!r}, "--batch", "1", "--threads", "1",
                        "--warmup", "1", "--runs", "3", "--no-memory", "--out", {str(out)!r}])
        print(json.dumps({{"modules": names, "codes": [served, benched],
                          "loaded": sorted({{m.split(".")[0] for m in sys.modules}})}}))
    """)

    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)

    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert {"__main__", "bench", "bundle", "cli", "evalset", "metrics"} <= set(report["modules"])
    assert report["codes"] == [0, 0]
    assert not set(BLOCKED) & set(report["loaded"])
    rows = json.loads(out.read_text())["rows"]
    assert [r["model"] for r in rows] == ["floor", "bundle"]
    assert rows[1][f"recall@{K}"] is not None


# --- recommend ----------------------------------------------------------------------------------


def test_recommend_by_raw_id_is_the_bundles_and_pytorchs_top_k(tiny):
    bundle = Bundle.open(tiny["bundle"])
    # Raw ids whose order differs from their indices: u0, u1, u10, u100, ... sort as strings.
    raw_users = [bundle.users[i] for i in (0, 7, 31, 64, 119)]
    args = [arg for user in raw_users for arg in ("--user", user)]

    served = _recommendations(runtime("recommend", tiny["bundle"], *args, "--k", K, "--json"))

    items, scores = bundle.recommend(np.array([bundle.user_index(u) for u in raw_users]))
    torch_items, torch_scores = _torch_top_k(tiny["run"], raw_users)
    for row, user in enumerate(raw_users):
        assert served[user]["source"] == "model"
        assert served[user]["items"] == bundle.item_ids(items[row, :K])
        assert served[user]["items"] == torch_items[row]
        np.testing.assert_allclose(served[user]["scores"], scores[row, :K], rtol=0, atol=1e-6)
        np.testing.assert_allclose(served[user]["scores"], torch_scores[row], atol=1e-4)


def test_recommend_text_output_and_a_smaller_k(tiny):
    bundle = Bundle.open(tiny["bundle"])
    user = bundle.users[3]

    result = runtime("recommend", tiny["bundle"], "--user", user, "--k", 3)

    assert result.returncode == 0, result.stderr
    items, _ = bundle.recommend(np.array([3]))
    assert result.stdout == f"{user}\tmodel\t{' '.join(bundle.item_ids(items[0, :3]))}\n"


def test_unknown_user_is_refused_or_served_the_most_popular_items(tiny):
    from edgerec.train.rundir import open_run

    known = Bundle.open(tiny["bundle"]).users[5]
    refused = runtime("recommend", tiny["bundle"], "--user", known, "--user", "nobody")
    assert_one_line_error(refused, "'nobody'", "--fallback popularity")
    assert refused.stdout == ""

    result = runtime(
        "recommend", tiny["bundle"], "--user", "nobody", "--user", known,
        "--fallback", "popularity", "--k", K, "--json",
    )  # fmt: skip

    # Popularity counted here from the run's own splits: training and validation interactions.
    dataset = open_run(tiny["run"]).load_dataset()
    seen = np.concatenate([dataset.train.items, dataset.valid.items])
    counts = np.bincount(seen, minlength=dataset.n_items)
    order = sorted(range(dataset.n_items), key=lambda i: (-counts[i], i))[:K]
    served = _recommendations(result)
    assert served["nobody"]["source"] == "popularity"
    assert served["nobody"]["items"] == [dataset.id_map.items[i] for i in order]
    assert served["nobody"]["scores"] == [float(counts[i]) for i in order]
    assert served[known]["source"] == "model"
    assert served[known]["items"] == _torch_top_k(tiny["run"], [known])[0][0]


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["--k", EXPORT_K + 1], [f"--k {EXPORT_K + 1}", f"top {EXPORT_K}"]),
        (["--k", 0], ["--k 0"]),
        (["--fallback", "random"], ["--fallback", "random"]),
        (["--k", "many"], ["--k", "many"]),
    ],
)
def test_bad_options_are_one_line_and_exit_2(tiny, args, fragments):
    user = Bundle.open(tiny["bundle"]).users[0]

    result = runtime("recommend", tiny["bundle"], "--user", user, *args)

    assert_one_line_error(result, *fragments)


def test_usage_errors_are_one_line_and_exit_2(tmp_path):
    assert_one_line_error(runtime("recommend", tmp_path), "--user")
    assert_one_line_error(runtime(), "command")
    assert_one_line_error(runtime("recommend", tmp_path / "nowhere", "--user", "1"), "nowhere")


# --- damaged bundles ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("damage", "fragments"),
    [
        ("sha256", ["sha256", "changed or damaged"]),
        ("truncated", ["bytes, the manifest records"]),
        ("manifest", ["manifest.json", "not an edgerec bundle"]),
    ],
)
@pytest.mark.parametrize("command", ["recommend", "verify", "bench"])
def test_a_damaged_bundle_is_refused_in_one_line(tiny, tmp_path, damage, fragments, command):
    broken = tmp_path / "broken"
    shutil.copytree(tiny["bundle"], broken)
    _damage(broken, damage)
    user = Bundle.open(tiny["bundle"]).users[0]
    extra = {"recommend": ["--user", user], "verify": [], "bench": ["--no-memory"]}[command]

    result = runtime(command, broken, *extra)

    assert_one_line_error(result, str(broken), *fragments)
    assert result.stdout == ""


def test_verify_passes_a_sound_bundle_and_refuses_a_changed_runner(tiny, tmp_path):
    result = runtime("verify", tiny["bundle"])
    assert result.returncode == 0, result.stderr
    checked = [line.split(":")[0] for line in result.stdout.splitlines()]
    assert checked == [
        "✓ manifest", "✓ model.onnx", "✓ id_map.json", f"✓ {RUNNER}", "✓ evalset.npz",
        "✓ onnxruntime", "✓ runtime",
    ]  # fmt: skip

    broken = tmp_path / "broken"
    shutil.copytree(tiny["bundle"], broken)
    _damage(broken, "runner")
    assert_one_line_error(runtime("verify", broken), RUNNER, "changed or damaged")


# --- runner.pyz ---------------------------------------------------------------------------------


def test_runner_serves_a_copied_bundle_on_its_own(tiny, tmp_path):
    """A copy outside the checkout, no PYTHONPATH: the runner imports edgerec from itself."""
    device = tmp_path / "device"
    shutil.copytree(tiny["bundle"], device)
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    bundle = Bundle.open(tiny["bundle"])
    users = [bundle.users[0], bundle.users[42]]

    def run(*args):
        command = [sys.executable, RUNNER, *args]
        return subprocess.run(command, capture_output=True, text=True, cwd=device, env=env)

    served = _recommendations(
        run("recommend", ".", "--user", users[0], "--user", users[1], "--json")
    )
    verified = run("verify", ".")

    items, _ = bundle.recommend(np.array([0, 42]))
    assert [served[u]["items"] for u in users] == [bundle.item_ids(row) for row in items]
    assert all(len(served[u]["items"]) == EXPORT_K for u in users)
    assert verified.returncode == 0, verified.stderr
    assert f"runtime: edgerec from {device / RUNNER / 'edgerec'}" in verified.stdout
    assert_one_line_error(run("recommend", ".", "--user", "nobody"), "'nobody'")


def test_runner_holds_the_runtime_and_what_it_imports_only(tiny, tmp_path):
    manifest = json.loads((tiny["bundle"] / "manifest.json").read_text())
    expected = [
        "edgerec/__init__.py", "edgerec/atomic.py", "edgerec/errors.py",
        *sorted(f"edgerec/runtime/{p.name}" for p in (REPO / "edgerec" / "runtime").glob("*.py")),
    ]  # fmt: skip

    assert runner_modules() == expected
    assert manifest["runner"]["modules"] == expected
    assert manifest["export_config"]["bundle_runner"] is True
    # Deterministic: the same sources give the same bytes, so the recorded sha256 is reproducible.
    again = build_runner(tmp_path / RUNNER)
    assert again["sha256"] == manifest["runner"]["sha256"]
    assert (tmp_path / RUNNER).read_bytes() == (tiny["bundle"] / RUNNER).read_bytes()


def _package(root: Path, files: dict[str, str]) -> Path:
    for name, text in {
        "edgerec/__init__.py": "",
        "edgerec/runtime/__init__.py": "",
        **files,
    }.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(textwrap.dedent(text))
    return root


def test_runner_refuses_a_runtime_that_imports_a_heavy_library(tmp_path):
    lazy_in_helper = {
        "edgerec/runtime/serve.py": "from edgerec import helpers\n",
        "edgerec/helpers.py": "import json\n\ndef save(x):\n    import torch\n",
    }
    assert runner_modules(_package(tmp_path / "a", lazy_in_helper)) == [
        "edgerec/__init__.py", "edgerec/helpers.py", "edgerec/runtime/__init__.py",
        "edgerec/runtime/serve.py",
    ]  # fmt: skip

    at_import_in_helper = {
        "edgerec/runtime/serve.py": "from edgerec.helpers import save\n",
        "edgerec/helpers.py": "import pandas as pd\n",
    }
    with pytest.raises(ExportError, match=r"edgerec/helpers.py \(edgerec.helpers\) imports pandas"):
        runner_modules(_package(tmp_path / "b", at_import_in_helper))

    lazy_in_runtime = {"edgerec/runtime/serve.py": "def go():\n    from torch import nn\n"}
    with pytest.raises(ExportError, match=r"serve.py \(edgerec.runtime.serve\) imports torch"):
        build_runner(tmp_path / RUNNER, _package(tmp_path / "c", lazy_in_runtime))
    assert not (tmp_path / RUNNER).exists()
