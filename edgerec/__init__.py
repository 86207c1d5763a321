"""edgerec: train a teacher recommender, distill a compact student, export it to ONNX, measure it.

The package is a library; `edgerec.cli` is a thin Typer layer on top of it. Heavy dependencies
(torch, onnxruntime) are imported inside the modules that use them so that `edgerec --help` and
the torch-free `edgerec.runtime` stay light.
"""

__version__ = "0.1.0"
