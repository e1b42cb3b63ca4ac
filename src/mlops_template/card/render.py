"""The model card as Markdown with Hugging Face front matter (YAML between ``---`` lines).

Numbers are written as they are in the JSON twin and the source files (``repr`` of the float,
no rounding), so a reader or a test can find each one in its source. Our own template rather
than skops' ``Card``: skops is installed for the model file (skops.io) but its Card needs
huggingface_hub, which we do not install; its default sections (a pickle "How to get started",
a model plot, Hub upload) do not fit a model served by BentoML, and every section here is a
table of facts the stages already wrote.
"""

from __future__ import annotations

from typing import Any

import yaml

from mlops_template.card.facts import NOT_STATED


def _num(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return [*lines, ""]


def _cell(value: Any) -> str:
    text = _num(value) if not isinstance(value, str) else value
    return text.replace("|", "\\|").replace("\n", " ")


def _text(value: str | list[str]) -> str:
    if value == NOT_STATED:
        return f"_{NOT_STATED}_"
    return ", ".join(value) if isinstance(value, list) else value


def front_matter(card: dict[str, Any]) -> str:
    return "---\n" + yaml.safe_dump(card["metadata"], sort_keys=False, width=100) + "---\n"


def _identity(card: dict[str, Any]) -> list[str]:
    i = card["identity"]
    run = i["mlflow"]
    libs = ", ".join(f"{k} {v}" for k, v in i["libraries"].items())
    rows = [
        ["Model tag (BentoML)", f"`{i['model_tag']}`"],
        ["Estimator", f"{i['model']} ({i['task']}, target `{i['target']}`)"],
        ["MLflow run", f"`{run['run_id']}`"],
        ["Registered version", f"{run['registered_model']} v{run['version']}"],
        ["Trained at", i["trained_at"]],
        ["Git commit", f"`{i['git_commit']}`"],
        [
            "Training data (dvc.lock md5)",
            f"`{i['training_data']['path']}` `{i['training_data']['md5']}`",
        ],
        ["Model file sha256", f"`{i['model_sha256']}`"],
        ["Data contract", f"{i['contract']['name']} v{i['contract']['version']}"],
        ["Python (training)", i["python"]],
        ["Libraries", libs],
    ]
    params = ", ".join(f"{k}={_num(v)}" for k, v in sorted(i["hyperparameters"].items()))
    rows.append(["Hyper-parameters", params or "defaults"])
    return ["## Model details", "", *_table(["", ""], rows)]


def _use(card: dict[str, Any]) -> list[str]:
    u = card["use"]
    return [
        "## Intended use",
        "",
        f"- **Intended use:** {_text(u['intended_use'])}",
        f"- **Out of scope:** {_text(u['out_of_scope_use'])}",
        f"- **Owners:** {_text(u['owners'])}",
        f"- **Contact:** {_text(u['contact'])}",
        f"- **License:** {_text(u['license'])}",
        "",
    ]


def _range(column: dict[str, Any]) -> str:
    if "values" in column:
        return column["values"]
    declared, observed = column.get("declared", {}), column.get("observed", {})
    parts = []
    if "categories" in declared:
        parts.append("categories " + ", ".join(str(c) for c in declared["categories"]))
    elif "min" in declared or "max" in declared:
        parts.append(f"declared {_num(declared.get('min'))} to {_num(declared.get('max'))}")
    if "min" in observed:
        parts.append(f"observed {observed['min']} to {observed['max']}")
    if "distinct" in observed:
        parts.append(f"{observed['distinct']} distinct")
    if "true_share" in observed:
        parts.append(f"true share {observed['true_share']}")
    return "; ".join(parts) or "-"


def _data(card: dict[str, Any]) -> list[str]:
    d = card["data"]
    split, rows = d["split"], d["rows"]
    pii = ", ".join(f"`{c}`" for c in d["pii_columns"]) or "none declared"
    lines = [
        "## Training data",
        "",
        f"- **Source:** {d['source']['kind']}: {d['source']['location']}",
        f"- **Contract:** {d['contract']['name']} v{d['contract']['version']}",
        f"- **Rows:** train {_num(rows['train'])}, test {_num(rows['test'])}",
        f"- **Split:** {split['method']}, test_size {split['test_size']}, seed {split['seed']}",
        f"- **PII columns** (never features, never logged; values withheld here): {pii}",
        "",
    ]
    table = [
        [f"`{c['name']}`", ", ".join(c["roles"]), c["dtype"], _num(c["missing_share"]), _range(c)]
        for c in d["columns"]
    ]
    return lines + _table(["column", "role", "type", "missing share", "range / categories"], table)


def _ci(entry: dict[str, Any]) -> list[Any]:
    ci = entry.get("ci")
    return [ci["low"], ci["high"]] if ci else ["-", "-"]


def _performance(card: dict[str, Any]) -> list[str]:
    p = card["performance"]
    held, cv = p["held_out"], p["cross_validation"]
    boot = held["bootstrap"]
    lines = [
        "## Performance",
        "",
        f"### Held-out split ({boot['confidence']} bootstrap interval, "
        f"{boot['resamples']} resamples)",
        "",
    ]
    rows = [[m, e["value"], *_ci(e)] for m, e in held["metrics"].items()]
    lines += _table(["metric", "value", "low", "high"], rows)
    lines += [f"### Cross-validation ({cv['folds']} folds, at most {cv['max_rows']} rows)", ""]
    lines += _table(
        ["metric", "mean", "std"], [[m, e["mean"], e["std"]] for m, e in cv["metrics"].items()]
    )
    if p["threshold"]:
        t = p["threshold"]
        lines += ["### Decision threshold", "", f"{t['value']}, chosen by: {t['chosen_by']}", ""]
    if p["classes"]:
        counts = ", ".join(f"{c}: {n}" for c, n in p["classes"].items())
        lines += [f"Held-out rows per class: {counts}", ""]
    return lines + _slices(p["slices"])


def _slices(s: dict[str, Any]) -> list[str]:
    if not s["slices"]:
        return ["### Slices", "", "No slice column (evaluate.slice_column).", ""]
    lines = [f"### Slices by `{s['column']}`", ""]
    names = [k for k in next(iter(s["slices"].values())) if k != "rows"]
    rows = [[n, v["rows"], *(v.get(m) for m in names)] for n, v in s["slices"].items()]
    lines += _table(["slice", "rows", *names], rows)
    for metric, c in s["checks"].items():
        below = ", ".join(f"{k} {v}" for k, v in c["below_floor"].items()) or "none"
        lines.append(
            f"- **{metric}**: floor {_num(c['floor'])} held: {_num(c['floor_held'])} "
            f"(below: {below}); gap {_num(c['gap'])} of at most {_num(c['max_gap'])} "
            f"held: {_num(c['gap_held'])}"
        )
    return [*lines, ""] if s["checks"] else lines


def _drivers(card: dict[str, Any]) -> list[str]:
    d = card["drivers"]
    lines = [
        "## What drives it",
        "",
        f"Permutation importance on {d['rows']} held-out rows, {d['repeats']} repeats:",
        "",
    ]
    lines += _table(
        ["input column", "importance"],
        [[r["feature"], r["importance"]] for r in d["permutation_importance"]],
    )
    nothing = ", ".join(f"`{k}` ({v})" for k, v in d["adding_nothing"].items()) or "none"
    floor = _num(d["floor"])
    return [*lines, f"Adding nothing (importance at most the floor {floor}): {nothing}", ""]


def _checks(card: dict[str, Any]) -> list[str]:
    g, o, m = card["gate"], card["onnx"], card["monitoring"]
    rules = "; ".join(
        f"{k}: " + ", ".join(f"{a} {_num(b)}" for a, b in v.items()) for k, v in g["rules"].items()
    )
    if "onnx_max_abs_diff" in o:
        parity = (
            f"ONNX equals scikit-learn within {o['onnx_tolerance']} on {o['onnx_checked_rows']} "
            f"held-out rows (largest difference {o['onnx_max_abs_diff']}); "
            f"served with {o['runtime']}"
        )
    else:
        parity = f"served with {o.get('runtime', '-')}: {o.get('onnx_error', 'not checked')}"
    ref = m["reference"]
    quality = ", ".join(f"{k} {v}" for k, v in m["quality_drop"].items()) or "none"
    return [
        "## Gate, runtime and monitoring",
        "",
        f"- **Metric gate:** {g['decision']} against the metrics committed at `{g['baseline_ref']}`"
        " (the pull-request report shows the comparison); rules: " + (rules or "none"),
        f"- **ONNX parity:** {parity}",
        f"- **Monitoring reference:** `{ref['path']}`, {_num(ref['rows'])} rows: {ref['what']}",
        f"- **Retrain when:** at least {m['drift_share']} of the input columns drift "
        f"({m['num_method']} / {m['cat_method']}, threshold {m['column_threshold']})"
        + ("; or the prediction drifts" if m["prediction_drift"] else "")
        + f"; or, with labels, a metric drops by more than: {quality}"
        + (
            f"; or the model is older than {m['max_model_age_days']} days"
            if m["max_model_age_days"]
            else ""
        ),
        "",
    ]


def _limitations(card: dict[str, Any]) -> list[str]:
    lim = card["limitations"]
    derived = [f"- {s}" for s in lim["derived"]] or ["- none found in the numbers"]
    stated = lim["stated"]
    own = [f"- {s}" for s in stated] if stated != NOT_STATED else [f"- _{NOT_STATED}_"]
    return [
        "## Limitations",
        "",
        "From the numbers:",
        "",
        *derived,
        "",
        "From the owners:",
        "",
        *own,
        "",
    ]


SECTIONS = (_identity, _use, _data, _performance, _drivers, _checks, _limitations)


def markdown(card: dict[str, Any]) -> str:
    title = f"# Model card: {card['identity']['model_tag']}"
    intro = (
        "Generated by the `package` stage from the pipeline's own reports "
        '(docs/review.md, "Model card"); do not edit by hand.'
    )
    body = [line for section in SECTIONS for line in section(card)]
    return front_matter(card) + "\n" + "\n".join([title, "", intro, "", *body]).rstrip() + "\n"
