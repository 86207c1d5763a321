"""`edgerec bench` on the host: orchestration around the torch-free core `edgerec.runtime.bench`.

config.py   BenchConfig (saved with every result) and the Device choice
run.py      exports × threads × batch → rows, one runner per device
eager.py    the eager PyTorch reference of --against-torch
macs.py     multiply-adds per query, counted from the graph (needs onnx)
machine.py  CPU model, cores, instruction-set flags, library versions
report.py   bench.json, bench.csv and config.json under --out
pareto.py   the accuracy/cost frontier
plot.py     recall against latency and size (the optional extra `plot`)
"""
