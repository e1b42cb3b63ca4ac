"""The metric gate: compare the workspace's reports/metrics.json with the committed metrics of
a git ref and fail when a gate declared in params.yaml (``gate.metrics``) fails.

`dvc metrics diff` shows a change but cannot fail a build; this does. The pure core is
:func:`compare` (baseline, candidate, gates -> rows); :func:`read_baseline` reads a ref's
metrics and params through DVC; :func:`run_gate` ties them together, writes reports/gate.md
and reports/gate.json and raises :class:`GateFailed` (exit 5) unless every gate passes or an
override (``gate.override``, ``MLOPS_GATE_OVERRIDE=1``, ``mlops gate --override``) accepts it;
only then it writes reports/gate_ok.json, the flag the `package` stage depends on.

Rules (docs/review.md): no baseline (first run, a ref without metrics, a
new metric) passes with a note; a gated metric missing from the candidate fails; floors and
ceilings (``min`` / ``max``) apply with or without a baseline; gates on metrics the task never
produces (``rmse`` for a classifier) are skipped.

The gate compares only metrics of the same dataset: evaluate records what it measured on
(contract name and version, target, task) in reports/dataset.json, committed beside the
metrics. A baseline of another dataset, or one that records no dataset, is "no comparable
baseline": the gate passes and says why (:func:`comparable`).

Every `dvc repro` runs the gate (its baseline is no DVC dependency), so the stage first checks
a fingerprint of its inputs (:func:`fingerprint`: candidate files, the baseline's resolved
commit, gate params, overrides, this code) against the one stored in reports/gate.json and
repeats that decision without importing DVC when they match.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import yaml

from mlops_template import baselines as simpler  # issue 20: the simpler-model rule
from mlops_template import paths
from mlops_template.config import MetricGate, Params
from mlops_template.errors import ConfigError, DataError, GateFailed
from mlops_template.metric_directions import HIGHER_IS_BETTER

log = logging.getLogger(__name__)

ENV_BASELINE = "MLOPS_GATE_BASELINE"
ENV_OVERRIDE = "MLOPS_GATE_OVERRIDE"
# First line of reports/gate.md: lets CI find and update its own PR comment.
MARKER = "<!-- mlops-gate-report -->"
REGRESSION_METRICS = frozenset({"rmse", "mae", "r2"})
CLASSIFICATION_METRICS = frozenset(HIGHER_IS_BETTER) - REGRESSION_METRICS
# Metrics are rounded to 6 decimals; a drop of exactly the allowed amount must pass.
TOLERANCE = 1e-9
NO_BASELINE = "no comparable baseline"
# Bump when what the fingerprint covers changes meaning (old reports are then decided again).
FINGERPRINT_VERSION = 1
# The code whose behaviour a stored decision depends on (beside the inputs).
_CODE = ("gate.py", "config.py", "errors.py", "metric_directions.py", "paths.py")

Status = Literal["pass", "fail", "skip", "info"]


@dataclass(frozen=True)
class Row:
    """One metric in the report; ``status`` "info" is an ungated metric, shown for review."""

    metric: str
    baseline: float | None
    candidate: float | None
    delta: float | None
    threshold: str
    status: Status
    note: str = ""


@dataclass
class Baseline:
    """The committed metrics of ``ref`` (None: no comparable ones, ``note`` says why), its
    dataset identity and the params diff against it."""

    ref: str
    commit: str | None = None
    metrics: dict[str, float] | None = None
    params_diff: dict[str, dict[str, Any]] = field(default_factory=dict)
    note: str = ""
    dataset: dict[str, Any] | None = None


@dataclass
class GateResult:
    rows: list[Row]
    baseline: Baseline
    override: bool = False
    notes: list[str] = field(default_factory=list)
    dataset: dict[str, Any] | None = None  # what the candidate metrics were measured on

    @property
    def failed(self) -> list[Row]:
        return [r for r in self.rows if r.status == "fail"]

    @property
    def passed(self) -> bool:
        return not self.failed

    @property
    def ok(self) -> bool:
        """What the exit status follows: passed, or failed but deliberately overridden."""
        return self.passed or self.override


# --------------------------------------------------------------------------- pure core


def is_higher_better(metric: str, gate: MetricGate) -> bool:
    if gate.direction is not None:
        return gate.direction == "higher"
    if metric not in HIGHER_IS_BETTER:
        raise ConfigError(
            f"gate.metrics.{metric}.direction: required for a metric without a known "
            f"direction (known: {', '.join(sorted(HIGHER_IS_BETTER))}); use higher or lower"
        )
    return HIGHER_IS_BETTER[metric]


def applies_to(metric: str, task: str | None) -> bool:
    """False for a known metric the task never produces (``rmse`` in a classification run)."""
    if task is None:
        return True
    if task == "regression":
        return metric not in CLASSIFICATION_METRICS
    return metric not in REGRESSION_METRICS


def describe(gate: MetricGate, higher: bool) -> str:
    """The gate in words, for the report's threshold column."""
    parts = ["higher is better" if higher else "lower is better"]
    if gate.max_drop_abs is not None:
        parts.append(f"worse by ≤ {gate.max_drop_abs:g}")
    if gate.max_drop_rel is not None:
        parts.append(f"worse by ≤ {gate.max_drop_rel:.1%}")
    if gate.min is not None:
        parts.append(f"≥ {gate.min:g}")
    if gate.max is not None:
        parts.append(f"≤ {gate.max:g}")
    return "; ".join(parts)


def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _bound_failures(gate: MetricGate, value: float) -> list[str]:
    out = []
    if gate.min is not None and value < gate.min - TOLERANCE:
        out.append(f"below the floor {gate.min:g}")
    if gate.max is not None and value > gate.max + TOLERANCE:
        out.append(f"above the ceiling {gate.max:g}")
    return out


def _drop_failures(gate: MetricGate, base: float, value: float, higher: bool) -> list[str]:
    worse = (base - value) if higher else (value - base)
    out = []
    if gate.max_drop_abs is not None and worse > gate.max_drop_abs + TOLERANCE:
        out.append(f"worse by {worse:.4g} > {gate.max_drop_abs:g}")
    if gate.max_drop_rel is not None and worse > TOLERANCE:
        rel = worse / abs(base) if base else math.inf
        if rel > gate.max_drop_rel + TOLERANCE:
            out.append(f"worse by {rel:.1%} > {gate.max_drop_rel:.1%}")
    return out


def check(metric: str, gate: MetricGate, baseline: Any, candidate: Any) -> Row:
    """Apply one gate to one metric."""
    higher = is_higher_better(metric, gate)
    threshold = describe(gate, higher)
    base, value = _finite(baseline), _finite(candidate)
    if value is None:
        note = "missing from the candidate" if candidate is None else f"not a number: {candidate}"
        return Row(metric, base, None, None, threshold, "fail", note)
    delta = None if base is None else round(value - base, 12)
    failures = _bound_failures(gate, value)
    if base is not None:
        failures += _drop_failures(gate, base, value, higher)
    note = "; ".join(failures) if failures else ("" if base is not None else "no baseline")
    return Row(metric, base, value, delta, threshold, "fail" if failures else "pass", note)


def compare(
    baseline: Mapping[str, Any] | None,
    candidate: Mapping[str, Any],
    gates: Mapping[str, MetricGate],
    task: str | None = None,
) -> list[Row]:
    """Gated metrics first (in declaration order), then every other metric as "info".

    ``baseline`` None means there is no baseline at all (every gate passes on its floors and
    ceilings alone); ``task`` skips gates on metrics that task never produces.
    """
    base = dict(baseline or {})
    rows = []
    for metric, gate in gates.items():
        if not applies_to(metric, task):
            higher = is_higher_better(metric, gate)
            note = f"not produced by a {task} task"
            rows.append(Row(metric, None, None, None, describe(gate, higher), "skip", note))
            continue
        rows.append(check(metric, gate, base.get(metric), candidate.get(metric)))
    for metric in sorted((set(candidate) | set(base)) - set(gates)):
        b, c = _finite(base.get(metric)), _finite(candidate.get(metric))
        delta = None if b is None or c is None else round(c - b, 12)
        note = "" if c is not None else "missing from the candidate"
        rows.append(Row(metric, b, c, delta, "not gated", "info", note))
    return rows


def _identity_key(identity: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "contract": identity["contract"]["name"],
        "target": identity["target"],
        "task": identity["task"],
    }


def identity_difference(baseline: Mapping[str, Any], candidate: Mapping[str, Any]) -> str:
    """How two dataset identities differ in what makes their metrics comparable: the
    contract's name, the target and the task ("" when they agree). A new version of the same
    contract is still compared (the report notes it)."""
    old, new = _identity_key(baseline), _identity_key(candidate)
    return "; ".join(f"{key} {old[key]!r} → {new[key]!r}" for key in old if old[key] != new[key])


def comparable(
    baseline: Baseline, base_dataset: Mapping[str, Any] | None, dataset: Mapping[str, Any] | None
) -> Baseline:
    """``baseline`` without its metrics (``note`` says why) unless they were measured on the
    candidate's dataset: the gate never compares metrics of two datasets. ``base_dataset`` is
    the identity committed with the baseline (None: it records none, e.g. older metrics);
    ``dataset`` the candidate's (None: unknown, which is bad data beside real metrics)."""
    if baseline.metrics is None:
        return baseline
    where = f"{baseline.ref} ({(baseline.commit or '')[:8]})"
    if base_dataset is None:
        why = f"{where} records no dataset identity ({paths.DATASET}) beside its metrics"
        return replace(baseline, metrics=None, note=f"{NO_BASELINE}: {why}")
    if dataset is None:
        raise DataError(
            f"{paths.DATASET} is missing: the gate cannot tell which dataset {paths.METRICS} "
            "was measured on; re-run the evaluate stage (it writes both)"
        )
    base_dataset = dict(base_dataset)
    if difference := identity_difference(base_dataset, dataset):
        why = f"{where} was evaluated on another dataset ({difference})"
        return replace(baseline, metrics=None, dataset=base_dataset, note=f"{NO_BASELINE}: {why}")
    return replace(baseline, dataset=base_dataset)


def describe_dataset(identity: Mapping[str, Any]) -> str:
    contract = identity["contract"]
    version = contract.get("version")
    name = f"`{contract['name']}`" + (f" v{version}" if version is not None else "")
    return f"{name}, target `{identity['target']}`, {identity['task']}"


# --------------------------------------------------------------------------- inputs


def read_candidate(path: Path = paths.METRICS) -> dict[str, Any]:
    """The workspace's metrics; {} when the file is missing (every gated metric then fails).
    A file that is not a JSON object is bad data (DataError, exit 3), not a failed gate."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except json.JSONDecodeError as err:
        raise DataError(f"{path}: not valid JSON ({err}); re-run the evaluate stage") from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a JSON object of metrics, got {type(data).__name__}")
    return data


def _parse_identity(text: str, source: str) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise DataError(f"{source}: not valid JSON ({err}); re-run the evaluate stage") from None
    contract = data.get("contract") if isinstance(data, dict) else None
    if not (isinstance(contract, dict) and "name" in contract and {"target", "task"} <= set(data)):
        raise DataError(
            f"{source}: expected a dataset identity {{contract: {{name, version}}, target, "
            f"task}}, got {text.strip()[:120]!r}"
        )
    return data


def read_identity(path: Path = paths.DATASET) -> dict[str, Any] | None:
    """What the workspace's metrics were measured on (written by evaluate); None if absent."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    return _parse_identity(text, str(path))


def read_identity_at(commit: str, path: Path = paths.DATASET) -> dict[str, Any] | None:
    """The dataset identity committed at ``commit`` (`git show`); None when that commit has no
    such file (metrics committed before identities were recorded: unknown dataset)."""
    spec = f"{commit}:./{path.as_posix()}"  # ./ : relative to the project, also in a subfolder
    english = os.environ | {"LC_ALL": "C"}  # the "does not exist" message below, untranslated
    try:
        done = subprocess.run(
            ["git", "show", spec], capture_output=True, text=True, check=False, env=english
        )
    except OSError as err:
        raise DataError(f"cannot run git to read {path} at {commit[:8]}: {err}") from None
    if done.returncode == 0:
        return _parse_identity(done.stdout, f"{path} at {commit[:8]}")
    if "does not exist" in done.stderr or "exists on disk, but not in" in done.stderr:
        return None
    raise DataError(f"git show {spec} failed: {done.stderr.strip()}")


def _flatten_params(diff: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    out = {}
    for file, keys in diff.items():
        prefix = "" if file == str(paths.PARAMS) else f"{file}:"
        for key, change in keys.items():
            out[prefix + key] = {"old": change.get("old"), "new": change.get("new")}
    return out


def _baseline_error(diff: Mapping[str, Any], ref: str, metrics_path: Path) -> Exception | None:
    """What DVC met reading ``metrics_path`` at ``ref``; None when it was read or is simply
    absent there (a first run: no baseline)."""
    errors = diff.get("errors", {}).get(ref)
    if isinstance(errors, Exception):  # the whole revision (e.g. its dvc.yaml) was unreadable
        return errors
    err = (errors or {}).get(str(metrics_path))
    return None if err is None or isinstance(err, FileNotFoundError) else err


def read_baseline(ref: str, metrics_path: Path = paths.METRICS) -> Baseline:
    """The metrics committed at ``ref`` and the params diff against it, through DVC
    (`dvc metrics diff <ref>` / `dvc params diff <ref>`). A repository without commits or a
    ref without the metrics file has no baseline (the gate passes with a note); an unknown ref
    is a ConfigError (in CI: fetch the base branch); a baseline DVC cannot read is a DataError
    -- never a silent "no baseline"."""
    from dvc.exceptions import DvcException, NotDvcRepoError
    from dvc.repo import Repo
    from dvc.scm import RevError
    from scmrepo.exceptions import RevError as ScmRevError

    try:
        repo = Repo()
    except NotDvcRepoError:
        return Baseline(ref, note=f"{NO_BASELINE}: not inside a DVC repository")
    with repo:
        if repo.scm.no_commits:
            return Baseline(ref, note=f"{NO_BASELINE}: the repository has no commits yet")
        try:
            commit = repo.scm.resolve_rev(ref)
            metrics = repo.metrics.diff(a_rev=ref, all=True)
            params = repo.params.diff(a_rev=ref, all=False)
        except (RevError, ScmRevError):
            raise ConfigError(
                f"gate.baseline_ref: unknown git revision {ref!r} (fetch it first, e.g. "
                "`git fetch origin main`; in CI check out with fetch-depth: 0)"
            ) from None
        except DvcException as err:
            raise DataError(f"DVC could not read the baseline at {ref!r}: {err}") from None
    if unreadable := _baseline_error(metrics, ref, metrics_path):
        raise DataError(
            f"{metrics_path} at {ref!r} ({commit[:8]}) is unreadable "
            f"({type(unreadable).__name__}: {unreadable}); the gate needs a readable baseline"
        )
    old = {
        name: change["old"]
        for name, change in metrics.get("diff", {}).get(str(metrics_path), {}).items()
        if change.get("old") is not None
    }
    params_diff = _flatten_params(params.get("diff", {}))
    if not old:
        note = f"{NO_BASELINE}: {ref} has no committed {metrics_path} (first run?)"
        return Baseline(ref, commit, None, params_diff, note)
    return Baseline(ref, commit, old, params_diff)


# --------------------------------------------------------------------------- settings


def _env_flag(name: str) -> bool | None:
    raw = os.environ.get(name, "").strip().lower()
    if not raw:
        return None
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name}={raw!r}: expected 1/true/yes or 0/false/no")


def resolve_settings(
    params: Params, baseline_ref: str | None = None, override: bool | None = None
) -> tuple[str, bool]:
    """Precedence: command-line argument, then environment, then params.yaml."""
    ref = baseline_ref or os.environ.get(ENV_BASELINE) or params.gate.baseline_ref
    if not override:
        env_override = _env_flag(ENV_OVERRIDE)
        override = params.gate.override if env_override is None else env_override
    return ref, override


# --------------------------------------------------------------------------- fingerprint


def resolve_commit(ref: str) -> str | None:
    """The commit ``ref`` names now, by `git rev-parse` (milliseconds, no DVC import); None
    when git cannot say (no repository, no commits, an unknown ref): the full run says why."""
    args = ["git", "rev-parse", "--verify", "--quiet", "--end-of-options", f"{ref}^{{commit}}"]
    try:
        done = subprocess.run(args, capture_output=True, text=True, check=False)
    except OSError:
        return None
    commit = done.stdout.strip()
    return commit if done.returncode == 0 and commit else None


def _sha256(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except FileNotFoundError:
        return None


def params_files(dvc_yaml: Path = paths.DVC_YAML) -> list[Path]:
    """params.yaml and every other params file a stage of dvc.yaml reads: the params diff in
    the report (`dvc params diff`) covers them."""
    files = {paths.PARAMS}
    try:
        stages = (yaml.safe_load(dvc_yaml.read_text()) or {}).get("stages") or {}
    except (OSError, yaml.YAMLError, AttributeError):
        stages = {}
    for stage in stages.values() if isinstance(stages, dict) else ():
        entries = stage.get("params") if isinstance(stage, dict) else None
        for entry in entries if isinstance(entries, list) else ():
            if isinstance(entry, dict):
                files.update(Path(name) for name in entry)
    return sorted(files)


def fingerprint(params: Params, ref: str, override: bool) -> str | None:
    """A digest of everything the decision and its report depend on: the candidate files
    (metrics, dataset identity), the baseline's resolved commit (its metrics, identity and
    params are fixed by it), the gate params and task, the override, the params files and
    dvc.yaml (the params diff) and this code. None when the commit cannot be resolved
    cheaply: the gate then always runs in full."""
    commit = resolve_commit(ref)
    if commit is None:
        return None
    here = Path(__file__).parent
    files = [paths.METRICS, paths.DATASET, paths.DVC_YAML, *params_files()]
    files.append(paths.BASELINES)  # issue 20: the simpler models' metrics
    inputs = {
        "version": FINGERPRINT_VERSION,
        "code": {name: _sha256(here / name) for name in _CODE}
        | {"baselines.py": _sha256(Path(simpler.__file__))},  # issue 20
        "baseline": {"ref": ref, "commit": commit},
        "override": override,
        "task": params.data.task,
        "gate": params.gate.model_dump(mode="json"),
        "files": {str(path): _sha256(path) for path in files},
    }
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()


def from_json(data: Mapping[str, Any]) -> GateResult:
    """The result :func:`to_json` wrote (all the report shows; not the baseline's metrics)."""
    base = data["baseline"]
    baseline = Baseline(
        base["ref"],
        base["commit"],
        None,
        dict(data["params_diff"]),
        base["note"],
        base["dataset"],
    )
    rows = [Row(**row) for row in data["rows"]]
    return GateResult(rows, baseline, bool(data["override"]), list(data["notes"]), data["dataset"])


def previous_result(key: str, path: Path = paths.GATE_JSON) -> GateResult | None:
    """The result in reports/gate.json if it was decided on inputs with fingerprint ``key``."""
    try:
        data = json.loads(path.read_text())
        if not isinstance(data, dict) or data.get("fingerprint") != key:
            return None
        return from_json(data)
    except (OSError, ValueError, KeyError, TypeError):
        return None


# --------------------------------------------------------------------------- report


def _num(value: float | None, signed: bool = False) -> str:
    if value is None:
        return "—"
    return f"{value:+.4f}" if signed else f"{value:.4f}"


def _cell(value: Any) -> str:
    return "—" if value is None else str(value)


_STATUS = {"pass": "✅ pass", "fail": "❌ **fail**", "skip": "skipped", "info": "·"}


def _header(result: GateResult) -> list[str]:
    base = result.baseline
    commit = f" @ `{base.commit[:8]}`" if base.commit else ""
    line = f"Baseline: `{base.ref}`{commit} · candidate: `{paths.METRICS}` in the workspace"
    if result.dataset:
        line += f" · dataset: {describe_dataset(result.dataset)}"
    lines = [line, ""]
    if base.note:
        lines += [
            f"Not compared, {base.note}. This run's metrics become a baseline once committed "
            f"with `{paths.DATASET}`.",
            "",
        ]
    return lines


def render_markdown(result: GateResult) -> str:
    """The report posted to the pull request, the job summary and reports/gate.md."""
    if result.passed:
        title = "✅ Metric gate passed"
    elif result.override:
        title = "⚠️ Metric gate failed — overridden, the change is accepted"
    else:
        title = "❌ Metric gate failed"
    base = result.baseline
    lines = [
        MARKER,
        f"### {title}",
        "",
        *_header(result),
        "| metric | baseline | candidate | delta | gate | result | note |",
        "| --- | ---: | ---: | ---: | --- | --- | --- |",
    ]
    for r in (r for r in result.rows if r.status != "skip"):
        lines.append(
            f"| {r.metric} | {_num(r.baseline)} | {_num(r.candidate)} | "
            f"{_num(r.delta, signed=True)} | {r.threshold} | {_STATUS[r.status]} | {r.note} |"
        )
    lines += ["", "#### Params changed against the baseline", ""]
    if base.params_diff:
        lines += ["| param | baseline | candidate |", "| --- | --- | --- |"]
        for key, change in sorted(base.params_diff.items()):
            old, new = (_cell(change[k]) for k in ("old", "new"))
            lines.append(f"| {key} | {old} | {new} |")
    else:
        lines.append("No params changed.")
    notes = list(result.notes)
    if skipped := [r for r in result.rows if r.status == "skip"]:
        names = ", ".join(r.metric for r in skipped)
        notes.append(f"Gates not applied ({skipped[0].note}): {names}.")
    if notes:
        lines += ["", "#### Notes", ""] + [f"- {n}" for n in notes]
    return "\n".join(lines) + "\n"


def to_json(result: GateResult, key: str | None = None) -> dict[str, Any]:
    """reports/gate.json; ``key``: the inputs' :func:`fingerprint` (lets the next run reuse it)."""
    base = result.baseline
    baseline: dict[str, Any] = {"ref": base.ref, "commit": base.commit, "note": base.note}
    baseline |= {"compared": base.metrics is not None, "dataset": base.dataset}
    return {
        "passed": result.passed,
        "override": result.override,
        "ok": result.ok,
        "baseline": baseline,
        "dataset": result.dataset,
        "failed": [r.metric for r in result.failed],
        "rows": [asdict(r) for r in result.rows],
        "params_diff": base.params_diff,
        "notes": result.notes,
        "fingerprint": key,
    }


def _write(text: str, target: Path) -> None:
    """Atomic, like :mod:`mlops_template.io` (which imports pandas: too slow for a gate that
    only repeats its last decision)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, target)
    finally:
        Path(tmp).unlink(missing_ok=True)


def _json_text(obj: Any) -> str:
    return json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n"


# --------------------------------------------------------------------------- entry points


def _notes(result: GateResult) -> list[str]:
    notes = []
    base, dataset = result.baseline.dataset, result.dataset
    if result.baseline.metrics is not None and base and dataset:
        old, new = base["contract"].get("version"), dataset["contract"].get("version")
        if old != new:
            notes.append(
                f"Contract version {old} → {new}: same contract name, target and task, so "
                "the metrics were compared."
            )
    if result.override and not result.passed:
        failed = ", ".join(r.metric for r in result.failed)
        notes.append(f"Override in effect: failed gates ({failed}) were accepted deliberately.")
    elif result.override:
        notes.append("Override was set but not needed: every gate passed.")
    return notes


def decide(params: Params, ref: str, override: bool) -> GateResult:
    """Read the candidate and the baseline (through DVC) and compare them if comparable."""
    candidate = read_candidate()
    dataset = read_identity()
    baseline = read_baseline(ref)
    if baseline.commit is not None and baseline.metrics is not None and candidate:
        baseline = comparable(baseline, read_identity_at(baseline.commit), dataset)
    rows = compare(baseline.metrics, candidate, params.gate.metrics, task=params.data.task)
    # --- issue 20: never worse than the class prior / mean; the plain reference (baselines.py)
    checks, simpler_notes = (
        simpler.check_baselines(candidate, simpler.read(), params.gate.reference, params.data.task)
        if candidate
        else ([], [])
    )
    rows += [Row(**asdict(c)) for c in checks]
    # --- end issue 20
    result = GateResult(rows, baseline, override, dataset=dataset, notes=simpler_notes)
    if not candidate:
        result.notes.append(f"{paths.METRICS} is missing or empty: run the evaluate stage.")
    result.notes[:0] = _notes(result)
    return result


def run_gate(
    params: Params, baseline_ref: str | None = None, override: bool | None = None
) -> GateResult:
    """Compare, write reports/gate.md and reports/gate.json, print the report; raise
    GateFailed unless it passed (or was overridden), else write reports/gate_ok.json.

    When the inputs' fingerprint equals the one in reports/gate.json, that decision is
    repeated without reading the baseline again (no DVC import: a no-op `dvc repro` stays
    fast); any changed input decides afresh. The reports are written either way; an error
    leaves none."""
    paths.GATE_OK.unlink(missing_ok=True)
    ref, override = resolve_settings(params, baseline_ref, override)
    for metric, gate in params.gate.metrics.items():
        is_higher_better(metric, gate)  # fail on a bad config before reading anything
    key = fingerprint(params, ref, override)
    result = previous_result(key) if key else None
    markdown = render_markdown(result) if result else ""
    if result is None:
        for stale in (paths.GATE_MD, paths.GATE_JSON):  # no old report on an error
            stale.unlink(missing_ok=True)
        result = decide(params, ref, override)
        markdown = render_markdown(result)
        _write(_json_text(to_json(result, key)), paths.GATE_JSON)
    else:
        log.info("gate: inputs unchanged since %s was written: same decision", paths.GATE_JSON)
    if not paths.GATE_MD.exists() or paths.GATE_MD.read_text() != markdown:
        _write(markdown, paths.GATE_MD)
    print(markdown, end="", flush=True)
    if not result.ok:
        summary = ", ".join(f"{r.metric} ({r.note})" for r in result.failed)
        raise GateFailed(
            f"metric gate failed against {ref}: {summary}; report in {paths.GATE_MD} "
            f"(accept deliberately with {ENV_OVERRIDE}=1 or `mlops gate --override`)"
        )
    _write(_json_text({"ok": True}), paths.GATE_OK)
    log.info("gate %s against %s", "overridden" if not result.passed else "passed", ref)
    return result


def run(params: Params) -> None:
    """The `gate` stage (dvc.yaml): baseline from params / MLOPS_GATE_BASELINE (default HEAD)."""
    run_gate(params)
