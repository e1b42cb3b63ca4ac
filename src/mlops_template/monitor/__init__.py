"""`mlops monitor`: compare a current batch with the reference and say when to retrain.

The reference is the held-out split as the evaluate stage scored it (data/reference/). A
current batch comes from a CSV/Parquet file, a SQL query or the service's request log (all of
it, or its last hours). Large batches are sampled (seeded; Parquet row by row without loading
the file, the other sources chunk by chunk through a reservoir) so memory stays bounded. The
sample is checked against the data contract first: contract failures are reported apart from
drift (exit 8). Then Evidently measures per-column drift, the share of drifted input columns
and drift of the model's output; when the batch has labels, quality is compared with
reports/metrics.json. Crossing a threshold of the ``monitor`` section of params.yaml exits 7
("retrain"). The summary is written whenever the batch could be read.

Modules, in the order a run uses them: ``batch`` (source, sampled reading, contract check),
``drift`` (Evidently), ``quality`` (labelled batch vs evaluation metrics), ``core`` (the pure
``monitor()`` and the decision), ``report`` (files written), ``stage`` (entry points).
"""

from __future__ import annotations

from mlops_template.monitor.batch import (
    ContractResult,
    RequestLogWindow,
    Source,
    check_batch,
    file_source,
    parse_since,
    read_current,
    resolve_source,
    sql_source,
)
from mlops_template.monitor.core import Outcome, monitor, prediction_column, retrain_reasons, score
from mlops_template.monitor.drift import Columns, Drift, columns_for, evidently_frame, measure_drift
from mlops_template.monitor.quality import quality
from mlops_template.monitor.report import render_markdown, write
from mlops_template.monitor.stage import finish, load_reference, preflight, run

__all__ = [
    "Columns",
    "ContractResult",
    "Drift",
    "Outcome",
    "RequestLogWindow",
    "Source",
    "check_batch",
    "columns_for",
    "evidently_frame",
    "file_source",
    "finish",
    "load_reference",
    "measure_drift",
    "monitor",
    "parse_since",
    "prediction_column",
    "preflight",
    "quality",
    "read_current",
    "render_markdown",
    "resolve_source",
    "retrain_reasons",
    "run",
    "score",
    "sql_source",
    "write",
]
