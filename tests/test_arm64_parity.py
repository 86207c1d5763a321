"""x86 against emulated AArch64: the same bundle must recommend the same on both.

The arm64 side is the real aarch64 onnxruntime build (its own MLAS kernels, the int8 ones with
the dot-product instructions) running `python -m edgerec.runtime` under qemu; the x86 side is
this host's `Bundle.recommend` and bench core. Tests marked `arm64` skip, with the reason, where
qemu or the environment is missing; the unmarked ones check what `edgerec bench --device arm64`
says then. Emulation is slow: the bundles are tiny and every emulated bench makes a few calls.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgerec.runtime import bench as core
from edgerec.runtime.bundle import Bundle
from edgerec.runtime.evalset import load_evalset
from edgerec.targets import arm64

logger = logging.getLogger(__name__)
REPO = Path(__file__).resolve().parents[1]
K, EXPORT_K = 10, 20
EMULATED_TIMEOUT_S = 300


@pytest.fixture(scope="module")
def arm64_env() -> arm64.Arm64Env:
    reason = arm64.unavailable_reason()
    if reason:
        pytest.skip(reason)
    env = arm64.Arm64Env(arm64.default_root())
    if not env.is_ready():
        pytest.skip(
            f"no arm64 environment at {env.root}: run `edgerec device setup arm64` or "
            "`python -m edgerec.targets.arm64 setup`"
        )
    return env


@pytest.fixture(scope="module")
def exports(tmp_path_factory) -> dict[str, Path]:
    """A tiny BPR run, exported fp32 (with a runner) and int8 with the arm64 preset."""
    from edgerec.data.config import DataConfig
    from edgerec.data.synthetic import SyntheticConfig
    from edgerec.export.config import ExportConfig, QuantConfig
    from edgerec.export.job import export_run
    from edgerec.models.config import ModelConfig
    from edgerec.train.config import TrainConfig
    from edgerec.train.job import train_run
    from edgerec.train.rundir import RunConfig

    root = tmp_path_factory.mktemp("parity")
    data = DataConfig(
        synthetic=SyntheticConfig(n_users=200, n_items=300, rank=8, mean_interactions=15)
    )
    config = RunConfig(
        data=data, model=ModelConfig(name="bpr", dim=16), train=TrainConfig(epochs=3, lr=0.01)
    )
    train_run(config, root / "run")
    # Training items excluded and a top 20 kept, so that Recall@10 is defined for every user.
    plan = {
        "fp32": ExportConfig(k=EXPORT_K, exclude_seen=True, bundle_runner=True),
        "int8": ExportConfig(k=EXPORT_K, exclude_seen=True, quant=QuantConfig(preset="arm64")),
    }
    for name, export_config in plan.items():
        export_run(root / "run", root / name, export_config)
    return {name: root / name for name in plan}


def _emulated(env, *args, cwd=None, extra_path=(REPO,)) -> subprocess.CompletedProcess:
    result = arm64.run_python(
        env, [str(a) for a in args], extra_path=extra_path, cwd=cwd, timeout=EMULATED_TIMEOUT_S
    )
    assert result.returncode == 0, result.stderr
    return result


def _emulated_recommend(env, bundle: Path, users: list[str]) -> dict[str, dict]:
    args = [arg for user in users for arg in ("--user", user)]
    result = _emulated(env, "-m", "edgerec.runtime", "recommend", bundle, *args, "--json")
    return {r["user"]: r for r in json.loads(result.stdout)["recommendations"]}


def _host(bundle: Bundle) -> tuple[list[list[str]], np.ndarray]:
    """Every user's raw item ids [users][K'] and scores [users, K'] from this host's runtime."""
    items, scores = bundle.recommend(np.arange(bundle.n_users))
    return [bundle.item_ids(row) for row in items], scores


@pytest.mark.arm64
def test_fp32_top_k_is_identical_on_arm64(arm64_env, exports):
    bundle = Bundle.open(exports["fp32"])
    host_items, host_scores = _host(bundle)

    served = _emulated_recommend(arm64_env, exports["fp32"], bundle.users)

    for index, user in enumerate(bundle.users):
        assert served[user]["items"] == host_items[index], user
        np.testing.assert_allclose(served[user]["scores"], host_scores[index], rtol=0, atol=1e-5)


@pytest.mark.arm64
def test_int8_agrees_with_x86_and_keeps_its_recall(arm64_env, exports, tmp_path):
    bundle = Bundle.open(exports["int8"])
    host_items, _ = _host(bundle)
    out = tmp_path / "rows.json"

    served = _emulated_recommend(arm64_env, exports["int8"], bundle.users)
    _emulated(
        arm64_env, "-m", "edgerec.runtime", "bench", exports["int8"], "--batch", 1,
        "--threads", 1, "--warmup", 1, "--runs", 3, "--k", K, "--no-memory", "--out", out,
    )  # fmt: skip

    # The two builds run different int8 kernels (x86 U8S8 with VPMADDUBSW or VNNI, ARM SDOT):
    # the products are exact, the fp32 rescaling around them may round apart, so a near-tie can
    # swap. Report how often the lists agree; require the accuracy to be the same.
    exact = np.mean(
        [served[u]["items"][:K] == host_items[i][:K] for i, u in enumerate(bundle.users)]
    )
    overlap = np.mean(
        [len(set(served[u]["items"][:K]) & set(host_items[i][:K])) / K
         for i, u in enumerate(bundle.users)]
    )  # fmt: skip
    logger.info("int8 top-%d on arm64 vs x86: %.1f%% identical, %.1f%% overlap", K,
                100 * exact, 100 * overlap)  # fmt: skip
    payload = json.loads(out.read_text())
    masked, held_out = load_evalset(exports["int8"] / "evalset.npz")
    host_recall = core.bundle_accuracy(bundle, bundle.session(), masked, held_out, K).recall
    arm_recall = payload["rows"][1][f"recall@{K}"]
    assert payload["runtime"]["machine"] == "aarch64"
    assert host_recall > 0
    assert abs(arm_recall - host_recall) <= 0.01 * host_recall, (arm_recall, host_recall)
    assert overlap >= 0.9


@pytest.mark.arm64
def test_bench_device_arm64_rows_are_labelled_and_complete(arm64_env, exports):
    from edgerec.bench.config import BenchConfig
    from edgerec.bench.macs import count_macs
    from edgerec.bench.run import run_bench

    def bench(device: str):
        config = BenchConfig(
            exports=(str(exports["fp32"]),), device=device, batches=(1, 4), threads=(1,),
            warmup=1, runs=3, memory=device == "arm64",
        )  # fmt: skip
        return run_bench(config).rows

    host, arm = bench("cpu"), bench("arm64")

    assert [(r["model"], r["batch"]) for r in arm] == [(r["model"], r["batch"]) for r in host]
    assert {(r["device"], r["emulated"]) for r in arm} == {("arm64", True)}
    model_rows = [r for r in arm if r["model"] == "fp32"]
    assert {r["macs"] for r in model_rows} == {count_macs(exports["fp32"] / "model.onnx")}
    # fp32 computes the same ranking on both, so the accuracy is the same to rounding.
    assert model_rows[0][f"recall@{K}"] == pytest.approx(host[-1][f"recall@{K}"], abs=1e-9)
    for r in model_rows:
        assert r["peak_rss_mb"] > r["baseline_rss_mb"] > 0
        assert r["rss_delta_mb"] == pytest.approx(r["peak_rss_mb"] - r["baseline_rss_mb"])


@pytest.mark.arm64
def test_runner_alone_serves_on_arm64(arm64_env, exports, tmp_path):
    """runner.pyz, copied with its bundle, on an interpreter with numpy and onnxruntime only."""
    device = tmp_path / "device"
    shutil.copytree(exports["fp32"], device)
    bundle = Bundle.open(exports["fp32"])
    host_items, _ = _host(bundle)

    result = _emulated(
        arm64_env, "runner.pyz", "recommend", ".", "--user", bundle.users[9], "--json",
        cwd=device, extra_path=(),
    )  # fmt: skip
    verified = _emulated(arm64_env, "runner.pyz", "verify", ".", cwd=device, extra_path=())

    [served] = json.loads(result.stdout)["recommendations"]
    assert served["items"] == host_items[9]
    assert "on aarch64 loads the graph" in verified.stdout
    assert f"runtime: edgerec from {device / 'runner.pyz' / 'edgerec'}" in verified.stdout


# --- without the environment: one line saying how to get it --------------------------------------


def _bench_cli(export: Path, env: dict) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "edgerec.cli.app", "bench", str(export), "--device", "arm64"]
    return subprocess.run(command, capture_output=True, text=True, env=env)


@pytest.mark.parametrize("missing", ["environment", "qemu"])
def test_bench_without_the_arm64_env_says_how_to_build_it(exports, tmp_path, missing):
    env = dict(os.environ)
    if missing == "environment":
        env[arm64.HOME_VARIABLE] = str(tmp_path / "not-built")
    else:
        env["PATH"] = str(Path(sys.executable).parent)  # no qemu-aarch64-static on it

    result = _bench_cli(exports["fp32"], env)

    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: --device arm64 is not available")
    assert "edgerec device setup arm64" in lines[0]
    fragment = str(tmp_path / "not-built") if missing == "environment" else "qemu-aarch64-static"
    assert fragment in lines[0]
