"""The machine a benchmark ran on: CPU model, cores, the instruction sets that decide which
onnxruntime kernels run, and the versions of the libraries measured.

The flags are the ones that change int8 and fp32 speed in onnxruntime's MLAS: AVX2 and AVX512
(the fp32 GEMM width), AVX512-VNNI / AVX-VNNI (int8 dot products into int32, no u8*s8
saturation) and AMX on x86; ASIMD, the dot-product extension (asimddp), I8MM and SVE on ARM.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
from pathlib import Path

FLAGS = (
    "sse4_2",
    "avx",
    "avx2",
    "fma",
    "avx512f",
    "avx512bw",
    "avx512_vnni",
    "avx_vnni",
    "amx_int8",
    "asimd",
    "asimddp",
    "i8mm",
    "sve",
)
LIBRARIES = ("numpy", "onnxruntime", "onnx", "torch", "edgerec")
_CPUINFO = Path("/proc/cpuinfo")


def parse_cpuinfo(text: str) -> dict:
    """CPU model, physical cores and the FLAGS present, from /proc/cpuinfo's text."""
    model, flags, cores = None, set(), set()
    physical_id = None
    for line in text.splitlines():
        key, _, value = (part.strip() for part in line.partition(":"))
        if key in ("model name", "Hardware", "CPU part") and model is None and value:
            model = value
        elif key in ("flags", "Features"):  # x86 and ARM name the same list differently
            flags |= set(value.split())
        elif key == "physical id":
            physical_id = value
        elif key == "core id":
            cores.add((physical_id, value))
    return {
        "cpu": model,
        "physical_cores": len(cores) or None,
        "flags": [f for f in FLAGS if f in flags],
    }


def machine_info() -> dict:
    """This machine, for the report: what produced the numbers beside it."""
    info = (
        parse_cpuinfo(_CPUINFO.read_text())
        if _CPUINFO.is_file()
        else {"cpu": platform.processor() or None, "physical_cores": None, "flags": []}
    )
    return {
        "machine": platform.machine(),
        "system": f"{platform.system()} {platform.release()}",
        **info,
        "logical_cores": os.cpu_count(),
        # What this process may run on: fewer than the machine's cores in a container or taskset.
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "python": platform.python_version(),
        "versions": {name: _version(name) for name in LIBRARIES},
    }


def _version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None
