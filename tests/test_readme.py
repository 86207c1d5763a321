"""The README's command block runs as written, on the built-in data instead of MovieLens.

Each `edgerec ...` line of the block under "## The commands" runs in order, in-process, in a
scratch directory (with `configs/` linked in, as in a checkout), with two substitutions so the
test takes seconds: the ML-100K path becomes `synthetic`, and training commands get
`--epochs 2`. `data download` needs the internet (its own test serves a local archive) and
`device setup arm64` needs root and qemu (tests/test_arm64_env.py): both are skipped here.
"""

import re
import shlex
from pathlib import Path

from edgerec.cli.app import main

ROOT = Path(__file__).resolve().parents[1]
ML100K = "../shared/data/ml-100k/u.data"
SKIPPED = ("edgerec data download", "edgerec device setup")


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    block = re.search(r"## The commands\n.*?```sh\n(.*?)```", text, re.S)
    assert block, "README.md has no command block under '## The commands'"
    return [line.strip() for line in block.group(1).splitlines() if line.startswith("edgerec ")]


def test_every_command_of_the_readme_block_runs(tmp_path, monkeypatch, capsys):
    (tmp_path / "configs").symlink_to(ROOT / "configs")
    monkeypatch.chdir(tmp_path)
    commands = readme_commands()
    assert len(commands) >= 6

    for line in commands:
        if line.startswith(SKIPPED):
            continue
        args = [a if a != ML100K else "synthetic" for a in shlex.split(line)[1:]]
        if args[0] in ("train", "distill"):
            args += ["--epochs", "2"]
        try:
            main(args)
            code = 0
        except SystemExit as exc:
            code = exc.code or 0
        captured = capsys.readouterr()
        assert code == 0, f"{line}\n{captured.err}"
