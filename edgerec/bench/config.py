"""What a benchmark measures: `BenchConfig`, saved beside every result, and the `Device` choice.

Imports nothing heavy (not even numpy): the CLI builds its `--device` choices from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from edgerec.errors import BenchError

if TYPE_CHECKING:
    from edgerec.runtime.bench import Settings


class Device(StrEnum):
    """Where the exports run. Each has its own runner in `edgerec.bench.run.RUNNERS`."""

    cpu = "cpu"
    arm64 = "arm64"


# Devices whose timings come from an emulator: their rows carry emulated=true, and their
# latencies say nothing about the real hardware.
EMULATED = frozenset({Device.arm64})


@dataclass(frozen=True)
class BenchConfig:
    # Export directories, as given (strings, so that the saved config is plain JSON).
    exports: tuple[str, ...]
    device: str = Device.cpu.value
    batches: tuple[int, ...] = (1, 64)
    threads: tuple[int, ...] = (1, 2)
    warmup: int = 10
    runs: int = 100
    # The cut-off of Recall@k and NDCG@k.
    k: int = 10
    # onnxruntime's CPU memory arena (enable_cpu_mem_arena): faster calls, a larger resident set.
    arena: bool = True
    # Peak RSS in a fresh process per row; costs one interpreter start each.
    memory: bool = True
    # Also time each export's run in eager PyTorch, on the same users and threads.
    against_torch: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.exports:
            raise BenchError("no exports given: pass one or more export directories")
        if self.device not in set(Device):
            choices = ", ".join(d.value for d in Device)
            raise BenchError(f"device '{self.device}' is unknown: expected one of {choices}")
        self.settings()  # validates the measurement settings

    def settings(self) -> Settings:
        """The settings of the torch-free measurement core (`edgerec.runtime.bench`)."""
        from edgerec.runtime.bench import Settings

        return Settings(
            batches=tuple(self.batches),
            threads=tuple(self.threads),
            warmup=self.warmup,
            runs=self.runs,
            arena=self.arena,
            k=self.k,
            memory=self.memory,
            seed=self.seed,
            device=self.device,
            emulated=Device(self.device) in EMULATED,
        )

    @property
    def n_settings(self) -> int:
        return len(self.batches) * len(self.threads)
