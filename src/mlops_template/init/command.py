"""The `mlops init` command: read, infer, print, validate everything, then write (never
replacing a contract or changing params.yaml without ``--force``), and version the data."""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from mlops_template import paths, sources
from mlops_template.config import Params, Task, load_params
from mlops_template.contract import check, describe_failures, load_contract
from mlops_template.errors import ConfigError, DataError
from mlops_template.init.inference import Column, Inference, infer
from mlops_template.init.params import changed_keys, dump, get, load, update_params
from mlops_template.init.pipeline import with_data_dep
from mlops_template.init.reading import contract_name, label, read
from mlops_template.io import atomic_path

log = logging.getLogger(__name__)

RAW_DIR = Path("data/raw")  # where a data file from outside the project is copied


# --------------------------------------------------------------------------- the printed table


def _role(col: Column, inf: Inference) -> str:
    text = {
        "id": "id (unique; not a feature)" if col.name == inf.id else "unique; not a feature",
        "target": "target",
        "timestamp": "timestamp: time split; parts ",
        "datetime": "date; parts ",
        "text": "not a feature",
        "empty": "not a feature",
        "feature": "feature",
    }[col.role]
    if col.dtype == "datetime":
        text += ", ".join(inf.datetime_parts.get(col.name, []))
    if col.name == inf.slice_column:
        text += ", slice column"
    shown = [*col.notes]
    if col.categories is not None and col.role != "target":
        preview = ", ".join(map(str, col.categories[:5]))
        shown.append(preview + (", ..." if len(col.categories) > 5 else ""))
    elif col.role == "target" and col.categories is not None:
        shown.append(", ".join(map(str, col.categories[:10])))
    return "; ".join([text, *shown])


def render(inf: Inference, where: str) -> str:
    """The compact table `mlops init` prints: column, dtype, nullable, role / notes."""
    rows = [("column", "dtype", "nullable", "role / notes")]
    rows += [(c.name, c.dtype, "yes" if c.nullable else "no", _role(c, inf)) for c in inf.columns]
    widths = [min(max(len(r[i]) for r in rows), 40) for i in range(3)]
    lines = [f"{where}: {inf.rows}, {len(inf.columns)} columns"]
    lines += [
        f"  {r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:<{widths[2]}}  {r[3]}" for r in rows
    ]
    lines.append(
        f"task: {inf.task} · split: {inf.split} · slice column: {inf.slice_column or 'none'}"
        f" · features.drop: {', '.join(inf.drop) or 'none'}"
    )
    lines += [f"note: {n}" for n in inf.notes]
    return "\n".join(lines)


# --------------------------------------------------------------------------- contract file


def contract_text(inf: Inference, where: str) -> str:
    """The contract as YAML, one line per column (as in the shipped contract.yaml), with the
    reasons as comments. Written with PyYAML, the loader's own dialect, so a category value
    like ``yes`` or ``on`` is quoted and reads back as a string."""
    contract = inf.contract()
    columns = contract.pop("columns")
    head = [
        f"# Data contract inferred by `mlops init` from {where} ({inf.rows}).",
        "# Review it: categories and nullable flags come from the rows read; min: 0 only for",
        "# non-negative quantities; no max bounds. Used by the data stage, serving, monitoring.",
        yaml.safe_dump(contract, sort_keys=False, allow_unicode=True, width=2**30).rstrip(),
        "columns:",
    ]
    for col in inf.columns:
        entry = yaml.safe_dump(
            {col.name: columns[col.name]},
            default_flow_style=True,
            sort_keys=False,
            allow_unicode=True,
            width=2**30,
        ).strip()[1:-1]  # "{name: {...}}" -> "name: {...}"
        comment = f"  # {'; '.join(col.notes)}" if col.notes else ""
        head.append(f"  {entry}{comment}")
    return "\n".join(head) + "\n"


# --------------------------------------------------------------------------- writing


@dataclass
class Plan:
    """Everything `mlops init` will write, computed before anything is."""

    source: sources.Table
    contract_path: Path
    contract_text: str
    params_path: Path
    params_before: str
    params_text: str
    data_path: str = ""  # data.path (relative to the project root for a local file)
    copy_from: Path | None = None  # a local file outside the project, copied to data_path
    pipeline_before: str = ""  # dvc.yaml ("" when the project has none)
    pipeline_text: str = ""  # dvc.yaml with the data stage depending on a local data_path

    @property
    def root(self) -> Path:
        """The project root: the folder of params.yaml (stages run there)."""
        return self.params_path.resolve().parent

    @property
    def changes(self) -> bool:
        old = self.contract_path.read_text() if self.contract_path.exists() else None
        return (
            old != self.contract_text
            or self.params_before != self.params_text
            or self.pipeline_before != self.pipeline_text
        )

    def conflicts(self) -> list[str]:
        """What would be replaced: the reasons --force is needed (empty: safe to write)."""
        out = []
        if self.contract_path.exists() and self.contract_path.read_text() != self.contract_text:
            out.append(f"{self.contract_path.name} exists")
        keys = changed_keys(self.params_before, self.params_text)
        if keys:
            out.append(f"{self.params_path.name} would change ({', '.join(keys)})")
        copy_to = self.root / self.data_path
        if self.copy_from and copy_to.exists() and not _same_file(copy_to, self.copy_from):
            out.append(f"{self.data_path} exists")
        return out


def _same_file(a: Path, b: Path) -> bool:
    import filecmp

    return filecmp.cmp(a, b, shallow=False)


def _validated(tmp: Path, target: Path, load: Any) -> Any:
    """Load a written temporary file with the project's own loader; errors name the target."""
    try:
        return load(tmp)
    except ConfigError as err:
        raise ConfigError(str(err).replace(str(tmp), str(target))) from None


def self_check(frame: pd.DataFrame, contract: Any, params: Params) -> None:
    """The contract must accept the rows it was inferred from, and the feature function must
    run on them: a failure here is a bug in the inference, not in the data."""
    from mlops_template.features import build_features

    report = check(frame, contract)
    if not report.ok:
        raise DataError(
            "the inferred contract rejects the rows it was inferred from (please report): "
            + describe_failures(report.failures, "sample").replace("\n", " ")
        )
    build_features(report.valid, params.features)


def _local_path(source: sources.Table, root: Path) -> tuple[str, Path | None]:
    """data.path for a local file (relative to the project root) and, for a file outside the
    project, the file to copy to data/raw/ so DVC can version it."""
    path = Path(source.location).resolve()
    try:
        return path.relative_to(root).as_posix(), None
    except ValueError:
        return (RAW_DIR / path.name).as_posix(), path


def _params_doc(params_path: Path) -> tuple[Any, str]:
    try:
        text = params_path.read_text()
    except FileNotFoundError:
        raise ConfigError(f"{params_path}: file not found (run from the project root)") from None
    return load(text), text


def version(existing: Path, inf: Inference) -> int | str:
    """The contract version: the existing contract's for the same columns, one more when a
    contract of the same name describes other columns. The gate compares metrics only for the
    same (name, version, target, task), so a different table in a same-named file is never
    compared with the old one's metrics."""
    try:
        old = load_contract(existing)
    except ConfigError:  # none yet, or not a valid contract: a fresh start
        return 1
    if old.name != inf.name:
        return 1
    new = {c.name: c.dtype for c in inf.columns}
    if {n: s.dtype for n, s in old.columns.items()} == new and old.target == inf.target:
        return old.version
    return old.version + 1 if isinstance(old.version, int) else 1


def plan(inf: Inference, source: sources.Table, params_path: Path) -> Plan:
    """The contract and params.yaml texts for ``inf`` and where the data file goes."""
    root = params_path.resolve().parent
    doc, before = _params_doc(params_path)
    contract_rel = str(get(doc, "data.contract") or paths.CONTRACT)
    inf.version = version(root / contract_rel, inf)
    data_path, copy_from = _local_path(source, root) if source.local else (source.location, None)
    old_path = str(get(doc, "data.path") or "")
    update_params(doc, inf, source, data_path)
    where = Path(source.location).name if source.local else label(source)
    pipeline = root / paths.DVC_YAML
    stages = pipeline.read_text() if pipeline.is_file() else ""
    new_dep = data_path if source.local else ""
    return Plan(
        source=source,
        contract_path=root / contract_rel,
        contract_text=contract_text(inf, where),
        params_path=params_path,
        params_before=before,
        params_text=dump(doc),
        data_path=data_path if source.fmt != "sql" else "",
        copy_from=copy_from,
        pipeline_before=stages,
        pipeline_text=with_data_dep(stages, old=old_path, new=new_dep, where=str(pipeline))
        if stages
        else "",
    )


# --------------------------------------------------------------------------- versioning the data


def _git_tracked(root: Path, rel: str) -> bool:
    proc = subprocess.run(
        ["git", "ls-files", "--error-unmatch", rel], cwd=root, capture_output=True, text=True
    )
    return proc.returncode == 0


def _imported(dvc_file: Path) -> bool:
    """A .dvc file written by `dvc import` / `import-url` (it has deps): do not `dvc add`."""
    try:
        return bool((yaml.safe_load(dvc_file.read_text()) or {}).get("deps"))
    except (OSError, yaml.YAMLError):
        return False


def track_local(root: Path, rel: str) -> str:
    """`dvc add` a local data file; return one line saying how it is versioned now."""
    dvc_file = root / f"{rel}.dvc"
    if not (root / ".dvc").is_dir():
        return f"{rel} is not versioned: no DVC repository here (run `dvc init`, `dvc add {rel}`)"
    if _imported(dvc_file):
        return f"{rel} is versioned by DVC ({rel}.dvc, an import)"
    if _git_tracked(root, rel):
        return (
            f"{rel} is versioned by git, not DVC; to move it: "
            f"`git rm --cached {rel} && dvc add {rel}`"
        )
    log.info("dvc add %s", rel)
    proc = subprocess.run(
        [sys.executable, "-m", "dvc", "add", "--quiet", rel],
        cwd=root,
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        lines = [ln for ln in (proc.stderr or proc.stdout).splitlines() if ln.strip()]
        raise DataError(f"dvc add {rel} failed: {lines[-1] if lines else proc.returncode}")
    return f"{rel} is versioned by DVC: commit {rel}.dvc (`dvc push` shares the data)"


def pinning(source: sources.Table) -> str:
    """How a URL or SQL source is (not) pinned, and what to do about it."""
    if source.fmt == "sql":
        return (
            "the query's result is not versioned: the data stage re-reads it only when params or "
            "the contract change (`dvc repro -f data` to re-read); dvc.lock pins the split it "
            "produced. For a fixed snapshot, export the result to Parquet and `mlops init` it."
        )
    return (
        f"{source.location} is read as it is when the data stage runs and is not versioned: "
        "dvc.lock pins only the split made from it. To version the file itself: "
        f"`dvc import-url {source.location} data/raw/` and `mlops init` the local copy."
    )


# --------------------------------------------------------------------------- the command


def run(
    source: sources.Table,
    *,
    target: str,
    task: Task | None = None,
    force: bool = False,
    sample_rows: int = 100_000,
    seed: int = 42,
    params_path: str | Path = paths.PARAMS,
    out: Any = None,
) -> Plan:
    """`mlops init`: read, infer, print, validate, then write (refusing to replace without
    ``force``). Returns what was written."""
    out = out or sys.stdout
    if sample_rows < 1:
        raise ConfigError(f"--sample-rows: must be at least 1, got {sample_rows}")
    log.info("reading %s", label(source))
    frame, total = read(source, max_rows=sample_rows, seed=seed)
    inf = infer(
        frame,
        target=target,
        task=task,
        name=contract_name(source),
        rows_total=total,
        where=label(source),
    )
    print(render(inf, label(source)), file=out)
    todo = plan(inf, source, Path(params_path))
    changed = todo.changes
    write(todo, frame, force=force, out=out)
    done = "wrote" if changed else "unchanged:"
    names = [todo.contract_path.name, todo.params_path.name]
    if todo.pipeline_text != todo.pipeline_before:
        names.append(str(paths.DVC_YAML))
    print(f"{done} {', '.join(names)}", file=out)
    print("next: dvc repro; then commit what changed (git status)", file=out)
    return todo


def write(todo: Plan, frame: pd.DataFrame, *, force: bool, out: Any) -> None:
    """Validate the contract and params with the project's loaders, check them against the
    rows read, refuse to replace anything without ``force``, version the data, then replace
    both files (each atomically; nothing is replaced when any step fails)."""
    with ExitStack() as stack:
        c_tmp = stack.enter_context(atomic_path(todo.contract_path))
        p_tmp = stack.enter_context(atomic_path(todo.params_path))
        c_tmp.write_text(todo.contract_text)
        p_tmp.write_text(todo.params_text)
        if todo.pipeline_text != todo.pipeline_before:
            pipeline = todo.root / paths.DVC_YAML
            stack.enter_context(atomic_path(pipeline)).write_text(todo.pipeline_text)
        contract = _validated(c_tmp, todo.contract_path, load_contract)
        params = _validated(p_tmp, todo.params_path, load_params)
        self_check(frame, contract, params)
        conflicts = todo.conflicts()
        if conflicts and not force:
            raise ConfigError(
                f"nothing written: {'; '.join(conflicts)}; re-run with --force to write them"
            )
        _finish_data(todo, out)


def _finish_data(todo: Plan, out: Any) -> None:
    """Copy a file from outside the project into data/raw/, put it under DVC, or say how a
    remote source is pinned."""
    root = todo.root
    if not todo.source.local:
        print(f"data: {pinning(todo.source)}", file=out)
        return
    if todo.copy_from is not None:
        dest = root / todo.data_path
        dest.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(dest) as tmp:
            shutil.copyfile(todo.copy_from, tmp)
        print(f"data: copied {todo.copy_from} to {todo.data_path} (inside the project)", file=out)
    print(f"data: {track_local(root, todo.data_path)}", file=out)
