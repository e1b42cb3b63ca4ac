"""`mlops init`: point the template at your own table in one command.

Reads a (seeded sample of a) CSV, Parquet or SQL table, infers a data contract and the
params.yaml sections that depend on the data (``data``, ``features``, ``evaluate.slice_column``,
``gate.metrics``, ``monitor.quality_drop``), prints what it inferred, and writes both files
only when nothing would be replaced or ``--force`` is given. A local data file is put under DVC.

``reading`` (the sample, through :mod:`mlops_template.sources`), ``inference`` (the rules),
``params`` (round-trip params.yaml edits), ``command`` (validation, writing, DVC).
"""

from __future__ import annotations

from mlops_template.init.command import Plan, run
from mlops_template.init.inference import Column, Inference, infer
from mlops_template.init.reading import read, table

__all__ = ["Column", "Inference", "Plan", "infer", "read", "run", "table"]
