"""The CLI end to end: real commands (in-process, and once as a process), their files, their
errors and exit codes."""

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from edgerec.cli.app import main

QUICK = ["--data", "synthetic", "--epochs", "3", "--dim", "8", "--lr", "0.01"]


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def edgerec(capsys):
    """Run the console script in-process (one torch import for the whole module)."""

    def run(*args) -> Result:
        capsys.readouterr()
        try:
            main([str(a) for a in args])
            code = 0
        except SystemExit as exc:
            code = exc.code or 0
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


def test_the_console_script_exits_2_with_one_line(tmp_path):
    """The same boundary seen from outside, through a real process."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "edgerec.cli.app",
            "distill",
            "--teacher",
            tmp_path,
            "--out",
            tmp_path / "s",
        ],
        capture_output=True,
        text=True,
    )
    assert_one_line_error(result, str(tmp_path), "not a finished run")


def assert_one_line_error(result, *fragments):
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr  # one line, no traceback
    assert lines[0].startswith("error: ")
    for fragment in fragments:
        assert fragment in lines[0]


@pytest.fixture
def teacher(tmp_path, edgerec):
    out = tmp_path / "teacher"
    result = edgerec("train", "--model", "bpr", *QUICK, "--out", out)
    assert result.returncode == 0, result.stderr
    return out


def test_help_does_not_import_heavy_libraries():
    heavy = "{'torch', 'onnxruntime', 'onnx', 'pandas', 'numpy'}"
    code = f"import sys, edgerec.cli.app; print(sorted({heavy} & set(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "[]"


def test_train_writes_the_run_directory_contract(teacher, edgerec):
    for name in (
        "config.json",
        "dataset.json",
        "id_map.json",
        "model.pt",
        "checkpoint.pt",
        "metrics.json",
    ):
        assert (teacher / name).is_file(), name
    metrics = json.loads((teacher / "metrics.json").read_text())
    for key in ("valid", "test", "epochs", "seconds", "params"):
        assert key in metrics
    assert set(metrics["test"]) >= {"recall@10", "ndcg@10", "recall@20", "ndcg@50", "hr@50"}
    config = json.loads((teacher / "config.json").read_text())
    assert config["model"] == {"name": "bpr", "dim": 8, "layers": 3, "dropout": 0.0}


def test_train_json_prints_the_metrics(tmp_path, edgerec):
    result = edgerec(
        "train", "--model", "ncf", *QUICK, "--layers", "1", "--json", "--out", tmp_path / "r"
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["params"] > 0


def test_preset_is_overridden_by_flags(tmp_path, edgerec):
    preset = tmp_path / "p.toml"
    preset.write_text('[model]\nname = "bpr"\ndim = 16\n[train]\nepochs = 2\n')
    result = edgerec("train", "--config", preset, "--dim", "4", "--out", tmp_path / "r")
    assert result.returncode == 0, result.stderr
    config = json.loads((tmp_path / "r" / "config.json").read_text())
    assert config["model"]["dim"] == 4 and config["train"]["epochs"] == 2


def test_distill_records_method_teacher_and_compression(teacher, tmp_path, edgerec):
    out = tmp_path / "student"
    result = edgerec(
        "distill",
        "--teacher",
        teacher,
        "--method",
        "ftd",
        "--dim",
        "2",
        "--epochs",
        "2",
        "--out",
        out,
    )
    assert result.returncode == 0, result.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["method"] == "ftd"
    assert metrics["teacher"] == str(teacher.resolve())
    assert metrics["compression"] == pytest.approx(4.0)  # dim 8 -> dim 2, same tables


def test_compare_lists_runs_side_by_side(teacher, edgerec):
    result = edgerec("compare", teacher, "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)[0]["method"] == "teacher"


def test_data_info_reports_sizes(edgerec):
    result = edgerec("data", "info", "synthetic", "--json")
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert (
        info["users"] == 600
        and info["train"] + info["valid"] + info["test"] == info["interactions"]
    )


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    "make_args,fragments",
    [
        (lambda d: ["--data", d / "missing.data"], ["missing.data"]),
        (
            lambda d: ["--data", _write(d / "u.data", "1\t2\t3\t4\n1\tx\t3\t4\n")],
            ["u.data", "line 2"],
        ),
        (
            lambda d: ["--data", _write(d / "u.data", "1\t2\t3\n")],
            ["u.data", "line 1", "expected 4"],
        ),
        (
            lambda d: ["--data", _write(d / "u.data", "1\t2\t3\t4\n"), "--rating-threshold", "9"],
            ["nothing left"],
        ),
        (lambda d: ["--data", _write(d / "odd.bin", "\x00\x01garbage\n")], ["format"]),
    ],
    ids=["missing-file", "non-numeric-id", "column-count", "nothing-left", "unknown-format"],
)
def test_bad_data_is_one_line_and_exit_2(tmp_path, make_args, fragments, edgerec):
    out = tmp_path / "run"
    result = edgerec("train", "--model", "bpr", "--epochs", "1", *make_args(tmp_path), "--out", out)
    assert_one_line_error(result, *fragments)
    assert not out.exists()  # nothing half-written


def test_unknown_model_name_is_rejected(tmp_path, edgerec):
    result = edgerec("train", "--model", "svd", *QUICK, "--out", tmp_path / "r")
    assert_one_line_error(result, "svd", "bpr")


def test_non_empty_out_is_refused_without_resume(teacher, edgerec):
    result = edgerec("train", "--model", "bpr", *QUICK, "--out", teacher)
    assert_one_line_error(result, "not empty", "--resume")


def test_distill_from_a_directory_that_is_not_a_run(tmp_path, edgerec):
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "config.json").write_text("{}")
    result = edgerec(
        "distill", "--teacher", tmp_path / "half", "--dim", "2", "--out", tmp_path / "s"
    )
    assert_one_line_error(result, "not a finished run", "metrics.json")


def test_distill_on_other_data_than_the_teacher(teacher, tmp_path, edgerec):
    other = _write(
        tmp_path / "u.data",
        "".join(f"{u}\t{i}\t5\t{u * 10 + i}\n" for u in range(1, 30) for i in range(1, 12)),
    )
    result = edgerec(
        "distill", "--teacher", teacher, "--data", other, "--dim", "2", "--out", tmp_path / "s"
    )
    assert_one_line_error(result, "other data", "fingerprint")
    assert not (tmp_path / "s").exists()


def test_resume_of_a_finished_run_keeps_its_result(teacher, edgerec):
    before = json.loads((teacher / "metrics.json").read_text())
    result = edgerec("train", "--model", "bpr", *QUICK, "--out", teacher, "--resume", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["test"] == before["test"]
