"""Quantization presets by target: which int8 types and ranges suit which CPU.

The choices follow onnxruntime's guidance on data types. Its dynamic quantization always
quantizes activations to uint8, so a dynamic model is U8S8 (int8 weights) or U8U8 (uint8
weights). For static QDQ models S8S8 is onnxruntime's recommended default. On x86-64 with AVX2
or AVX512 but without VNNI, MLAS runs U8S8 with VPMADDUBSW, which adds two u8*s8 products into
a saturating int16: large activations times large weights clip. The two remedies onnxruntime
names are `reduce_range` (7-bit weights, so a pair sum always fits in int16) and U8U8 (computed
with 16-bit multiplies, no saturation, fewer products per instruction). VNNI (VPDPBUSD) and
ARM64's dot-product instructions (SDOT/UDOT) accumulate straight into int32 and have no such
hazard, so they keep full 8-bit weights.

Weight-only quantization computes in fp32 and is the same on every target.

This module imports nothing heavy: the CLI builds its `--target` choices from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from edgerec.errors import ConfigError


@dataclass(frozen=True)
class Preset:
    name: str
    # Weight type of a dynamic (QOperator) model; its activations are always uint8.
    dynamic_weights: str
    # Activation and weight types of a static (QDQ) model.
    static_activations: str
    static_weights: str
    # Quantize weights to 7 bits (onnxruntime's remedy for VPMADDUBSW saturation).
    reduce_range: bool
    why: str

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "dynamic_weights": self.dynamic_weights,
            "static_activations": self.static_activations,
            "static_weights": self.static_weights,
            "reduce_range": self.reduce_range,
        }


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset(
            "x86-avx2",
            dynamic_weights="int8",
            static_activations="int8",
            static_weights="int8",
            reduce_range=True,
            why="U8S8 runs on VPMADDUBSW, whose int16 pair sums saturate; 7-bit weights keep "
            "them in range and keep the fast instruction. Safe on every x86-64 CPU.",
        ),
        Preset(
            "x86-avx512",
            dynamic_weights="uint8",
            static_activations="uint8",
            static_weights="uint8",
            reduce_range=False,
            why="Same saturation hazard without VNNI; U8U8 avoids it with full 8-bit weights, "
            "its slower 16-bit multiplies paid for by AVX512's wider registers.",
        ),
        Preset(
            "x86-vnni",
            dynamic_weights="int8",
            static_activations="int8",
            static_weights="int8",
            reduce_range=False,
            why="VPDPBUSD accumulates in int32, so no saturation: full-range U8S8 (dynamic) and "
            "onnxruntime's recommended S8S8 QDQ (static).",
        ),
        Preset(
            "arm64",
            dynamic_weights="int8",
            static_activations="int8",
            static_weights="int8",
            reduce_range=False,
            why="SDOT/UDOT accumulate in int32, no saturation; U8S8 is as accurate as U8U8 and "
            "faster on small cores, S8S8 QDQ is the static default.",
        ),
    )
}

DEFAULT_PRESET = "x86-avx2"

# The CLI's `--target` choices, one per preset.
Target = Enum("Target", {name.replace("-", "_"): name for name in PRESETS}, type=str)


def get_preset(name: str) -> Preset:
    if name not in PRESETS:
        raise ConfigError(
            f"quantization target '{name}' is unknown: expected one of {', '.join(PRESETS)}"
        )
    return PRESETS[name]
