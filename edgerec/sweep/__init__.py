"""`edgerec sweep`: distill, export and benchmark a grid of students, and pick the smallest
model that meets a budget: how much accuracy a device's constraints cost, in one command.

config.py      SweepConfig, loaded from configs/sweeps/NAME.toml and saved resolved
grid.py        the cells (size, method, seed) × precision × device, and their units
record.py      one JSON record per finished unit, written atomically; what a rerun may trust
executor.py    distillations and exports in worker processes (or Ray), benchmarks alone
results.py     the table of cells, one row each, read back from the records
selection.py   budgets, the Pareto frontiers and the smallest cell within budget (pure)
report.py      report.md, results.json and results.csv in the sweep's directory
job.py         `run_sweep`, the library entry point
"""
