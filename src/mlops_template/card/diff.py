"""The model card against a base branch's: what changed in the data, the metrics, the slices
and the threshold, as Markdown for the pull-request report (``make card-diff``, appended to
the gate's sticky comment by .ci/pr-report.sh).

The base card is the ``reports/model_card.json`` committed at the ref (a DVC output kept in
git, like reports/metrics.json), read with ``git show``.

    python -m mlops_template.card.diff --baseline origin/main [--out reports/model_card_diff.md]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from mlops_template import io, paths
from mlops_template.errors import DataError

HEADING = "### Model card: changes against"


def base_card(ref: str, path: Path = paths.MODEL_CARD_JSON) -> dict[str, Any] | None:
    """The card committed at ``ref``, or None when the ref has none (or no such ref)."""
    out = subprocess.run(
        ["git", "show", f"{ref}:{path.as_posix()}"], capture_output=True, text=True, check=False
    )
    if out.returncode != 0:
        return None
    try:
        card = json.loads(out.stdout)
    except ValueError:
        raise DataError(f"{ref}:{path}: not JSON (a damaged model card at the base)") from None
    return card if isinstance(card, dict) else None


def _num(value: Any) -> str:
    return "-" if value is None else str(value)


def _delta(old: Any, new: Any) -> str:
    if isinstance(old, int | float) and isinstance(new, int | float) and not isinstance(old, bool):
        change = round(new - old, 6)
        return f"{change:+g}" if change else "0"
    return "" if old == new else "changed"


def _rows(pairs: list[tuple[str, Any, Any]]) -> list[list[str]]:
    """Only what changed: (label, base, candidate, delta)."""
    return [[k, _num(a), _num(b), _delta(a, b)] for k, a, b in pairs if a != b]


def _table(title: str, header: list[str], rows: list[list[str]]) -> list[str]:
    if not rows:
        return [f"**{title}:** unchanged", ""]
    lines = [f"**{title}:**", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(r) + " |" for r in rows] + [""]


def _get(card: dict[str, Any], *keys: str) -> Any:
    node: Any = card
    for key in keys:
        node = node.get(key) if isinstance(node, dict) else None
    return node


def data_changes(base: dict[str, Any], new: dict[str, Any]) -> list[list[str]]:
    pairs: list[tuple[str, Any, Any]] = [
        ("source", _get(base, "data", "source"), _get(new, "data", "source")),
        ("contract", _get(base, "data", "contract"), _get(new, "data", "contract")),
        ("training data md5", *(_get(c, "identity", "training_data", "md5") for c in (base, new))),
        ("train rows", _get(base, "data", "rows", "train"), _get(new, "data", "rows", "train")),
        ("test rows", _get(base, "data", "rows", "test"), _get(new, "data", "rows", "test")),
        ("split", _get(base, "data", "split"), _get(new, "data", "split")),
    ]
    columns = [{c["name"]: c for c in _get(x, "data", "columns") or []} for x in (base, new)]
    for name in sorted(set(columns[0]) | set(columns[1])):
        old, cur = columns[0].get(name, {}), columns[1].get(name, {})
        for key in ("roles", "dtype", "missing_share"):
            pairs.append((f"`{name}` {key.replace('_', ' ')}", old.get(key), cur.get(key)))
    rows = _rows(pairs)
    for row in rows:  # a dict or list is shown as "changed", not dumped whole
        row[1:3] = [v if len(v) <= 60 else "…" for v in row[1:3]]
    return rows


def metric_changes(base: dict[str, Any], new: dict[str, Any]) -> list[list[str]]:
    held = [_get(c, "performance", "held_out", "metrics") or {} for c in (base, new)]
    cv = [_get(c, "performance", "cross_validation", "metrics") or {} for c in (base, new)]
    pairs = [
        (f"{m} (held-out)", _get(held[0], m, "value"), _get(held[1], m, "value"))
        for m in sorted(set(held[0]) | set(held[1]))
    ]
    pairs += [
        (f"{m} (CV mean)", _get(cv[0], m, "mean"), _get(cv[1], m, "mean"))
        for m in sorted(set(cv[0]) | set(cv[1]))
    ]
    thresholds = [_get(c, "performance", "threshold") or {} for c in (base, new)]
    pairs.append(("threshold", thresholds[0].get("value"), thresholds[1].get("value")))
    pairs.append(
        ("threshold chosen by", thresholds[0].get("chosen_by"), thresholds[1].get("chosen_by"))
    )
    return _rows(pairs)


def slice_changes(base: dict[str, Any], new: dict[str, Any]) -> list[list[str]]:
    found = [_get(c, "performance", "slices") or {} for c in (base, new)]
    checked = sorted(set(found[0].get("checks") or {}) | set(found[1].get("checks") or {}))
    slices = [f.get("slices") or {} for f in found]
    pairs: list[tuple[str, Any, Any]] = [("column", found[0].get("column"), found[1].get("column"))]
    for name in sorted(set(slices[0]) | set(slices[1])):
        old, cur = slices[0].get(name, {}), slices[1].get(name, {})
        pairs.append((f"{name} rows", old.get("rows"), cur.get("rows")))
        pairs += [(f"{name} {m}", old.get(m), cur.get(m)) for m in checked]
    for metric in checked:
        old, cur = (f.get("checks", {}).get(metric, {}) for f in found)
        pairs.append((f"{metric} floor held", old.get("floor_held"), cur.get("floor_held")))
        pairs.append((f"{metric} gap", old.get("gap"), cur.get("gap")))
    return _rows(pairs)


def limitation_changes(base: dict[str, Any], new: dict[str, Any]) -> list[str]:
    old, cur = (set(_get(c, "limitations", "derived") or []) for c in (base, new))
    lines = [f"- new: {s}" for s in sorted(cur - old)]
    lines += [f"- gone: {s}" for s in sorted(old - cur)]
    return ["**Limitations from the numbers:**", "", *(lines or ["unchanged"]), ""]


def render(ref: str, base: dict[str, Any] | None, new: dict[str, Any]) -> str:
    """Markdown of the changes (a collapsed block: the gate's table stays on top)."""
    title = f"{HEADING} `{ref}`"
    if base is None:
        return (
            f"{title}\n\n`{ref}` has no {paths.MODEL_CARD_JSON}: nothing to compare, this card "
            f"is the first (see {paths.MODEL_CARD} in the build).\n"
        )
    columns = ["", "base", "this branch", "change"]
    body = [
        *_table("Data", columns, data_changes(base, new)),
        *_table("Metrics and threshold", columns, metric_changes(base, new)),
        *_table("Slices", columns, slice_changes(base, new)),
        *limitation_changes(base, new),
    ]
    tag = _get(new, "identity", "model_tag")
    summary = f"{_get(base, 'identity', 'model_tag')} → {tag}"
    return "\n".join(
        [title, "", "<details><summary>" + summary + "</summary>", "", *body, "</details>", ""]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mlops_template.card.diff")
    parser.add_argument("--baseline", required=True, help="git ref of the base card")
    parser.add_argument("--out", default=str(paths.MODEL_CARD_DIFF))
    args = parser.parse_args(argv)
    try:
        new = json.loads(paths.MODEL_CARD_JSON.read_text())
    except (OSError, ValueError) as err:
        print(
            f"{paths.MODEL_CARD_JSON}: cannot read ({err}); run the package stage", file=sys.stderr
        )
        return 2
    try:
        text = render(args.baseline, base_card(args.baseline), new)
    except DataError as err:
        print(str(err), file=sys.stderr)
        return err.exit_code
    io.write_text(text, args.out)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
