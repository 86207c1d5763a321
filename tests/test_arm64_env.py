"""The emulated AArch64 environment: detection, apt-source parsing, and x86/arm64 parity.

Tests marked `arm64` run the real aarch64 onnxruntime under qemu. They skip when qemu is missing
or the environment is not built; `EDGEREC_BUILD_ARM64=1` lets them build it (a minute or so).
"""

import importlib.metadata
import logging
import os
import stat
import time
from pathlib import Path

import numpy as np
import pytest

import edgerec
from edgerec.errors import TargetError
from edgerec.targets import arm64

logger = logging.getLogger(__name__)
REPO = Path(__file__).resolve().parents[1]
N_FACTORS, N_ITEMS, K = 16, 64, 5

# Runs inside the emulated interpreter: argv is model, input .npy, output folder.
_INFER = """\
import sys
import numpy as np, onnxruntime as ort
model, user, out = sys.argv[1:4]
options = ort.SessionOptions()
options.intra_op_num_threads = 1
session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
values = session.run(None, {"user": np.load(user)})
for meta, value in zip(session.get_outputs(), values):
    np.save(f"{out}/{meta.name}.npy", value)
"""


@pytest.fixture(scope="module")
def arm64_env() -> arm64.Arm64Env:
    reason = arm64.unavailable_reason()
    if reason:
        pytest.skip(reason)
    env = arm64.Arm64Env(arm64.default_root())
    if env.is_ready():
        return env
    if not os.environ.get("EDGEREC_BUILD_ARM64"):
        pytest.skip(
            f"no arm64 environment at {env.root}: set EDGEREC_BUILD_ARM64=1 to build it here,"
            " or run `python -m edgerec.targets.arm64 setup`"
        )
    return arm64.setup()


@pytest.fixture(scope="module")
def recommender(tmp_path_factory) -> tuple[Path, np.ndarray, np.ndarray, np.ndarray]:
    """An fp32 ONNX scorer `top-k(user @ item_table + item_bias)` with its weights and a batch."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(7)
    item_table = rng.normal(size=(N_FACTORS, N_ITEMS)).astype(np.float32)  # [factors, n_items]
    item_bias = rng.normal(scale=0.1, size=N_ITEMS).astype(np.float32)  # [n_items]
    users = rng.normal(size=(8, N_FACTORS)).astype(np.float32)  # [batch, factors]

    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["user", "item_table"], ["dot"]),
            helper.make_node("Add", ["dot", "item_bias"], ["scores"]),
            helper.make_node("TopK", ["scores", "k"], ["top_scores", "top_items"], axis=-1),
        ],
        "recommender",
        [helper.make_tensor_value_info("user", TensorProto.FLOAT, ["batch", N_FACTORS])],
        [
            helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["batch", N_ITEMS]),
            helper.make_tensor_value_info("top_scores", TensorProto.FLOAT, ["batch", K]),
            helper.make_tensor_value_info("top_items", TensorProto.INT64, ["batch", K]),
        ],
        initializer=[
            numpy_helper.from_array(item_table, "item_table"),
            numpy_helper.from_array(item_bias, "item_bias"),
            numpy_helper.from_array(np.array([K], dtype=np.int64), "k"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    path = tmp_path_factory.mktemp("recommender") / "fp32.onnx"
    onnx.save(model, path)
    return path, item_table, item_bias, users


def _infer_host(model: Path, users: np.ndarray) -> dict[str, np.ndarray]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
    values = session.run(None, {"user": users})
    return {meta.name: value for meta, value in zip(session.get_outputs(), values, strict=True)}


def _infer_emulated(
    env: arm64.Arm64Env, model: Path, users: np.ndarray, work: Path
) -> dict[str, np.ndarray]:
    work.mkdir()
    np.save(work / "user.npy", users)
    result = arm64.run_python(
        env, ["-c", _INFER, str(model), str(work / "user.npy"), str(work)], timeout=300
    )
    assert result.returncode == 0, result.stderr
    return {name: np.load(work / f"{name}.npy") for name in ("scores", "top_scores", "top_items")}


def test_reason_names_the_missing_qemu(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))

    reason = arm64.unavailable_reason()

    assert reason is not None
    assert "qemu-aarch64-static not found" in reason
    assert "apt-get install qemu-user-static debootstrap" in reason


def test_reason_asks_for_root(monkeypatch, tmp_path):
    # Empty executables stand in for the tools: only their presence on PATH is detected here.
    for tool in ("qemu-aarch64-static", "unshare", "mount"):
        (tmp_path / tool).write_text("")
        (tmp_path / tool).chmod(stat.S_IRWXU)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(os, "geteuid", lambda: 1000)

    assert "root" in arm64.unavailable_reason()
    assert "debootstrap not found" in arm64.unavailable_reason(build=True)


def test_mirror_is_read_from_both_apt_formats(monkeypatch, tmp_path):
    monkeypatch.delenv(arm64.MIRROR_VARIABLE, raising=False)
    (tmp_path / "sources.list").write_text(
        "# deb http://commented.example/debian bookworm main\n"
        "deb-src http://source.example/debian bookworm main\n"
        "deb http://other.example/ubuntu jammy main\n"
    )
    parts = tmp_path / "sources.list.d"
    parts.mkdir()
    (parts / "a.list.disabled").write_text("deb http://disabled.example/debian bookworm main\n")
    (parts / "b.sources").write_text(
        "Types: deb\nURIs: http://off.example/debian\nSuites: bookworm\nEnabled: no\n\n"
        "Types: deb\n# a comment\nURIs: http://security.example/debian-security\n"
        "Suites: bookworm-security\n\n"
        "Types: deb deb-src\nURIs: http://mirror.example/debian\n"
        "Suites: bookworm\n bookworm-updates\nComponents: main\n"
    )

    assert arm64.find_mirror(tmp_path) == "http://mirror.example/debian"

    (parts / "0.list").write_text(
        "deb [arch=arm64 signed-by=/k.gpg] http://first.example/d bookworm main\n"
    )
    assert arm64.find_mirror(tmp_path) == "http://first.example/d"

    monkeypatch.setenv(arm64.MIRROR_VARIABLE, "http://override.example/debian")
    assert arm64.find_mirror(tmp_path) == "http://override.example/debian"


def test_no_mirror_for_the_suite_is_an_error(monkeypatch, tmp_path):
    monkeypatch.delenv(arm64.MIRROR_VARIABLE, raising=False)
    (tmp_path / "sources.list").write_text("deb http://other.example/ubuntu jammy main\n")

    with pytest.raises(TargetError, match=arm64.MIRROR_VARIABLE):
        arm64.find_mirror(tmp_path)


def test_setup_refuses_to_replace_a_foreign_folder(tmp_path):
    reason = arm64.unavailable_reason(build=True)
    if reason:
        pytest.skip(reason)
    (tmp_path / "notes.txt").write_text("mine")

    with pytest.raises(TargetError, match="no arm64 environment"):
        arm64.setup(tmp_path)
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_failed_build_leaves_nothing_behind(monkeypatch, tmp_path):
    reason = arm64.unavailable_reason(build=True)
    if reason:
        pytest.skip(reason)
    monkeypatch.setenv(arm64.MIRROR_VARIABLE, f"file://{tmp_path}/no-such-mirror")

    with pytest.raises(TargetError, match="debootstrap failed"):
        arm64.setup(tmp_path / "env")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.arm64
def test_emulated_python_is_aarch64_with_host_versions(arm64_env):
    info = arm64.machine_info(arm64_env)

    assert info["machine"] == "aarch64"
    assert info["emulated"] is True
    assert info["asimddp"] is True
    for name in ("numpy", "onnxruntime"):
        assert info[name] == importlib.metadata.version(name)


@pytest.mark.arm64
def test_extra_path_puts_the_repo_before_the_wheels(arm64_env):
    probe = "import sys, edgerec; print(edgerec.__version__); print(edgerec.__file__)"

    result = arm64.run_python(arm64_env, ["-c", probe], extra_path=[REPO], timeout=120)

    assert result.returncode == 0, result.stderr
    version, location = result.stdout.split()
    assert version == edgerec.__version__
    assert Path(location).is_relative_to(REPO)


@pytest.mark.arm64
def test_exit_status_and_stderr_come_back(arm64_env):
    script = "import sys; sys.stderr.write('no such bundle'); sys.exit(3)"

    result = arm64.run_python(arm64_env, ["-c", script], timeout=120)

    assert (result.returncode, result.stderr) == (3, "no such bundle")


@pytest.mark.arm64
def test_running_past_the_timeout_raises(arm64_env):
    started = time.monotonic()

    with pytest.raises(TargetError, match="ran past 2 s"):
        arm64.run_python(arm64_env, ["-c", "import time; time.sleep(60)"], timeout=2)
    assert time.monotonic() - started < 30


@pytest.mark.arm64
def test_setup_of_a_current_env_returns_at_once(arm64_env):
    if arm64_env.manifest()["packages"] != arm64.wanted_versions():
        pytest.skip("the environment was built for other host versions; setup would rebuild it")
    started = time.monotonic()

    assert arm64.setup(arm64_env.root) == arm64_env
    assert time.monotonic() - started < 5


@pytest.mark.arm64
def test_fp32_model_recommends_the_same_on_arm64(arm64_env, recommender, tmp_path):
    model, item_table, item_bias, users = recommender
    expected = users @ item_table + item_bias  # [batch, n_items]

    host = _infer_host(model, users)
    arm = _infer_emulated(arm64_env, model, users, tmp_path / "arm")

    np.testing.assert_allclose(host["scores"], expected, atol=1e-5)
    np.testing.assert_array_equal(host["top_items"], np.argsort(-expected, axis=1)[:, :K])
    np.testing.assert_allclose(arm["scores"], host["scores"], atol=1e-5)
    np.testing.assert_allclose(arm["top_scores"], host["top_scores"], atol=1e-5)
    np.testing.assert_array_equal(arm["top_items"], host["top_items"])


@pytest.mark.arm64
def test_int8_model_recommends_the_same_on_arm64(arm64_env, recommender, tmp_path):
    from onnxruntime.quantization import QuantType, quantize_dynamic

    model, _, _, users = recommender
    int8 = tmp_path / "int8.onnx"
    quantize_dynamic(model, int8, weight_type=QuantType.QInt8)
    fp32 = _infer_host(model, users)["scores"]  # [batch, n_items]

    host = _infer_host(int8, users)
    arm = _infer_emulated(arm64_env, int8, users, tmp_path / "arm")

    # Both compute the same integer products exactly; only the fp32 rescaling around them could
    # round differently, so the arm64 result must sit far inside the quantization error itself.
    quantization_error = float(np.abs(host["scores"] - fp32).max())
    difference = float(np.abs(arm["scores"] - host["scores"]).max())
    # Shown with --log-cli-level=INFO.
    logger.info(
        "int8: max |arm64 - x86| = %.3g, max |int8 - fp32| = %.3g", difference, quantization_error
    )
    assert quantization_error > 0, "the model was not quantized"
    assert difference <= 1e-3 * quantization_error + 1e-6, f"max |arm - x86| = {difference:.3g}"
    np.testing.assert_array_equal(arm["top_items"], host["top_items"])
