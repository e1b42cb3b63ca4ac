"""The metric gate: compare the workspace's reports/metrics.json with the committed metrics of
a git ref and fail when a gate declared in params.yaml (``gate.metrics``) fails.

`dvc metrics diff` shows a change but cannot fail a build; this does. One module per job:

- :mod:`mlops_template.gate_rules` (shared with `mlops compare`): the pure rules,
  ``compare(baseline, candidate, gates) -> rows``;
- :mod:`.inputs`: the candidate and the baseline, read through git and DVC;
- :mod:`.settings`: baseline ref and override from arguments, environment, params.yaml;
- :mod:`.fingerprint`: the cache that repeats an unchanged decision without DVC;
- :mod:`.report`: reports/gate.md and reports/gate.json;
- :mod:`.decision`: :func:`decide` assembles the decision, :func:`run_gate` writes it and
  raises :class:`GateFailed` (exit 5) unless every gate passes or an override
  (``gate.override``, ``MLOPS_GATE_OVERRIDE=1``, ``mlops gate --override``) accepts it; only
  then it writes reports/gate_ok.json, the flag the `package` stage depends on.

The gate compares only metrics of the same dataset: evaluate records what it measured on
(contract name and version, target, task) in reports/dataset.json, committed beside the
metrics. A baseline of another dataset, or one that records no dataset, is "no comparable
baseline": the gate passes and says why
(:func:`mlops_template.gate_rules.comparable`).

Every `dvc repro` runs the gate (its baseline is no DVC dependency), so the stage first checks
a fingerprint of its inputs (:func:`.fingerprint.fingerprint`: candidate files, the
baseline's resolved commit, gate params, overrides, this code) against the one stored in
reports/gate.json and repeats that decision without importing DVC when they match.
"""

from __future__ import annotations

from mlops_template.stages.gate.decision import decide, run, run_gate

__all__ = ["decide", "run", "run_gate"]
