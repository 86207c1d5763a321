"""Export a trained run to a bundle: an ONNX recommender graph, fp32 or int8, validated.

`edgerec.export.job.export_run(run_dir, out, ExportConfig)` is the entry point; the modules are
its stages: `graph` (the inference graph and its export), `quantize` with `presets` (int8 by
onnxruntime.quantization), `validate` (parity checks), `bundle` (the directory and its manifest).
The bundle is read, without torch, by `edgerec.runtime.bundle`. Nothing is imported here, so
that importing a light module of this package (the CLI imports `presets`) stays light.
"""
