"""The `mlops` command: pipeline stages (called by dvc.yaml) and user-facing commands.

Every :class:`~mlops_template.errors.MlopsError` becomes one readable message on stderr
and the error's exit code (2 config, 3 data, 4 tracking, 5 gate, 6 package, 7-8 monitor,
9 registry, 10 model file, 11 Dask cluster); see README "Exit codes".
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import importlib
import logging
import os
import signal
import sys
from collections.abc import Sequence
from typing import NoReturn

from mlops_template import paths
from mlops_template.config import load_params
from mlops_template.errors import MlopsError

log = logging.getLogger("mlops_template")

# Stage name (as in dvc.yaml) -> module whose run(params) is the stage's entry point.
STAGES = {
    "data": "mlops_template.stages.data",
    "features": "mlops_template.stages.features",
    "train": "mlops_template.stages.train",
    "evaluate": "mlops_template.stages.evaluate",
    "tune": "mlops_template.stages.tune",
    "package": "mlops_template.stages.package",
    "gate": "mlops_template.stages.gate",
}


def configure_logging(verbose: bool = False) -> None:
    level = logging.DEBUG if verbose else logging.INFO
    if sys.stderr.isatty():
        from rich.logging import RichHandler

        handler: logging.Handler = RichHandler(show_path=False, rich_tracebacks=False)
        handler.setFormatter(logging.Formatter("%(message)s"))
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    # a library's handler writing to a stream that is gone must not print logging's own
    # traceback into the one-line error contract
    logging.raiseExceptions = False
    root.setLevel(logging.WARNING)
    log.setLevel(level)


def _stage(args: argparse.Namespace) -> None:
    params = load_params(args.params)
    module = importlib.import_module(STAGES[args.name])
    module.run(params)


def _end_stage_process(code: int) -> NoReturn:
    """End a `mlops stage` process without the C library's exit-time destructors.

    A stage that read or wrote Parquet leaves pyarrow's C++ thread pools alive (numpy's
    OpenBLAS and scikit-learn's OpenMP pools too, in C); destroying them while the interpreter
    tears down aborted a features stage once under load, after both outputs were written
    (SIGABRT, "terminate called without an active exception", apache/arrow#34314; DVC: "exited
    with -6"). Everything a stage owes is done first: its outputs are closed and renamed
    (io.py), Python's exit handlers run (MLflow, logging), the streams are flushed; then the
    process ends without running the libraries' static destructors (joblib's worker
    processes, if any, stop when they see their parent gone).
    """
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(code)


def _validate(args: argparse.Namespace) -> None:
    """Check a CSV/Parquet file against the data contract without running the pipeline."""
    from mlops_template import sources
    from mlops_template.contract import load_contract, validate

    params = load_params(args.params)
    contract = load_contract(args.contract or params.data.contract)
    table = sources.read(sources.table(args.file, name="mlops validate"))
    frame = validate(table, contract, source=args.file)
    print(f"OK: {args.file} ({len(frame)} rows) satisfies the contract {contract.name!r}")


def _score(args: argparse.Namespace) -> None:
    """Score a CSV/Parquet file in chunks; rejected rows go to a side file with the reason."""
    from mlops_template.score import run_cli

    params = load_params(args.params)
    if params.dask.enabled:  # partitions scored on the cluster, a partitioned Parquet output
        from mlops_template import distributed_batch
        from mlops_template.contract import load_contract

        contract = load_contract(params.data.contract)
        distributed_batch.score(args.input, args.output, contract, params.dask)
        return
    run_cli(args.input, args.output, args.chunk_size, params.data.contract)


def _gate(args: argparse.Namespace) -> None:
    """Compare metrics with a git ref's; exit 5 when a declared gate fails."""
    from mlops_template.stages.gate import run_gate

    run_gate(load_params(args.params), baseline_ref=args.baseline, override=args.override)


def _promote(args: argparse.Namespace) -> None:
    """Point the registry's champion alias at a model version (default: the trained one)."""
    from mlops_template.registry import promote, trained_model

    params = load_params(args.params)
    name = params.tracking.registered_model
    if args.challenger:  # the compared challenger, after `mlops compare` said promote
        from mlops_template.serving.rollout.report import promote_challenger

        done = promote_challenger(params, args.image, args.override)
    elif args.version:
        done = promote(name, args.version, image=args.image)
    else:  # the trained model: its version must come from its own run in this store
        trained = trained_model()
        done = promote(name, trained.version, image=args.image, run_id=trained.run_id)
    was = done.previous or "none"
    print(f"{done.name}: champion -> version {done.version} (was {was})")


def _compare(args: argparse.Namespace) -> None:
    """Champion vs challenger on the request log; exit 5 when the decision is keep."""
    from mlops_template.monitor.batch import parse_since
    from mlops_template.serving.rollout.report import run_compare

    params = load_params(args.params)
    since = parse_since(args.since) if args.since else None
    run_compare(params, args.request_log, since, args.labels, args.labels_query)


def _rollback(args: argparse.Namespace) -> None:
    """Point the champion alias back at the previous champion; print what to redeploy."""
    from mlops_template.registry import rollback

    done = rollback(load_params(args.params).tracking.registered_model)
    print(
        f"{done.name}: champion -> version {done.version} (was {done.previous}); "
        f"redeploy image {done.image or '(not recorded)'} "
        f"(git commit {done.git_commit or 'unknown'})"
    )


def _monitor(args: argparse.Namespace) -> None:
    """Drift / quality / contract check of a current batch against the reference."""
    from mlops_template.monitor import parse_since, preflight, resolve_source, run

    params = load_params(args.params)
    since = parse_since(args.since) if args.since else None
    source = resolve_source(
        params, args.current, args.sql, args.request_log, since, args.model_version
    )
    if args.preflight:
        preflight(source)
    else:
        run(params, source, labels=args.labels)


def _explain(args: argparse.Namespace) -> None:
    """Per-column contributions to the model's output on one row of a CSV/Parquet file."""
    from mlops_template.explain import run_cli

    params = load_params(args.params)
    print(
        run_cli(
            args.file,
            row=args.row,
            id_value=args.id,
            contract_path=params.data.contract,
            permutations=args.permutations,
            as_json=args.json,
        )
    )


def _init(args: argparse.Namespace) -> None:
    """Infer the contract and the data-dependent params from a table; write them."""
    from mlops_template.errors import ConfigError
    from mlops_template.init import run, table

    if (args.data is None) == (args.sql is None):
        raise ConfigError("mlops init: give a DATA file or URL, or --sql URL --query Q (one)")
    if (args.sql is None) != (args.query is None):
        raise ConfigError("mlops init: --sql URL and --query Q go together")
    run(
        table(args.sql, args.query) if args.sql else table(args.data),
        target=args.target,
        task=args.task,
        force=args.force,
        sample_rows=args.sample_rows,
        seed=args.seed,
        params_path=args.params,
    )


def _synth(args: argparse.Namespace) -> None:
    """A synthetic batch for the monitoring demo and tests (same generator as the data stage)."""
    from mlops_template.synthetic import write_batch

    params = load_params(args.params)
    s = params.data.synthetic
    write_batch(
        args.output, args.rows, s.fraud_rate, args.seed, args.drift, label=not args.no_label
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mlops", description=__doc__.splitlines()[0])
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="debug logging; tracebacks on errors"
    )
    parser.add_argument(
        "--params", default="params.yaml", help="params file (default: %(default)s)"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    stage = sub.add_parser("stage", help="run one pipeline stage (dvc.yaml calls this)")
    stage.add_argument("name", choices=sorted(STAGES))
    stage.set_defaults(func=_stage)

    check = sub.add_parser("validate", help="check a CSV/Parquet file against the data contract")
    check.add_argument("file")
    check.add_argument("--contract", help="contract YAML (default: data.contract in params)")
    check.set_defaults(func=_validate)

    scorer = sub.add_parser("score", help="batch-score a CSV/Parquet file with models/model.skops")
    scorer.add_argument("input")
    scorer.add_argument("--output", required=True, help="predictions (.parquet or .csv)")
    scorer.add_argument("--chunk-size", type=int, default=100_000)
    scorer.set_defaults(func=_score)

    gate = sub.add_parser("gate", help="metric review against a git ref (exit 5 on failure)")
    gate.add_argument("--baseline", help="git ref (default: env MLOPS_GATE_BASELINE, params)")
    gate.add_argument("--override", action="store_true", help="report failures but pass")
    gate.set_defaults(func=_gate)

    prom = sub.add_parser("promote", help="set the registry's champion alias to a version")
    prom.add_argument("--version", type=int, help="default: mlflow.version in models/model.json")
    prom.add_argument("--image", help="container image of this version (recorded as a tag)")
    prom.add_argument(
        "--challenger",
        action="store_true",
        help="the challenger of reports/rollout/compare.json, if it said promote",
    )
    prom.add_argument(
        "--override", action="store_true", help="with --challenger: promote although it said keep"
    )
    prom.set_defaults(func=_promote)

    comp = sub.add_parser(
        "compare",
        help="champion vs challenger on the request log: promote or keep (exit 5 = keep)",
    )
    comp.add_argument("--request-log", metavar="PATH", help="default: serve.request_log")
    comp.add_argument(
        "--since", metavar="WHEN", help="ISO time or 24h / 7d (default: compare.window_hours)"
    )
    comp.add_argument(
        "--labels",
        metavar="FILE|URL",
        help="labels: a CSV/Parquet file or URL, or a SQLAlchemy URL with --labels-query",
    )
    comp.add_argument("--labels-query", metavar="Q", help="SQL query returning key and target")
    comp.set_defaults(func=_compare)

    back = sub.add_parser("rollback", help="move the champion alias to the previous champion")
    back.set_defaults(func=_rollback)
    mon = sub.add_parser(
        "monitor",
        help="compare a current batch with the reference: drift, quality, contract "
        "(exit 7 = retrain, 8 = batch breaks the contract)",
    )
    where = mon.add_mutually_exclusive_group()
    where.add_argument("--current", metavar="FILE", help="CSV/Parquet batch (path or URL)")
    where.add_argument(
        "--sql", action="store_true", help="run monitor.sql.query on monitor.sql.url"
    )
    where.add_argument(
        "--request-log",
        nargs="?",
        const="",
        metavar="PATH",
        help="the service's request log (default: serve.request_log)",
    )
    mon.add_argument(
        "--labels",
        metavar="FILE",
        help="labels that arrived later (id + target columns), joined to the batch by the id",
    )
    mon.add_argument(
        "--since",
        metavar="WHEN",
        help="request log: rows logged since an ISO time or for the last 24h / 7d "
        "(default: monitor.window_hours)",
    )
    mon.add_argument(
        "--model-version",
        metavar="TAG",
        help="request log: rows served by this model version (default: monitor.model_version)",
    )
    mon.add_argument(
        "--preflight",
        action="store_true",
        help="only check that the model, reference and source are in place (exit 3 if not)",
    )
    mon.set_defaults(func=_monitor)

    init = sub.add_parser(
        "init",
        help="infer contract.yaml and the data-dependent params.yaml sections from your table",
    )
    init.add_argument("data", nargs="?", metavar="DATA", help="CSV/Parquet path or fsspec URL")
    init.add_argument("--target", required=True, metavar="COLUMN", help="the label column")
    init.add_argument(
        "--task",
        choices=["binary", "multiclass", "regression"],
        help="default: inferred from the target",
    )
    init.add_argument(
        "--force", action="store_true", help="replace an existing contract and change params.yaml"
    )
    init.add_argument("--sql", metavar="URL", help="SQLAlchemy URL (with --query) instead of DATA")
    init.add_argument("--query", metavar="Q", help="the SQL query returning the table")
    init.add_argument(
        "--sample-rows",
        type=int,
        default=100_000,
        metavar="N",
        help="infer from a seeded sample of N rows at most (default: %(default)s)",
    )
    init.add_argument("--seed", type=int, default=42, help="sampling seed (default: %(default)s)")
    init.set_defaults(func=_init)

    expl = sub.add_parser("explain", help="why the model gave one row its output (per column)")
    expl.add_argument("file", help="CSV/Parquet file holding the row")
    which = expl.add_mutually_exclusive_group()
    which.add_argument("--row", type=int, help="position of the row (default 0)")
    which.add_argument("--id", help="the row whose contract id column has this value")
    expl.add_argument("--permutations", type=int, default=32, help="column orders averaged")
    expl.add_argument("--json", action="store_true", help="JSON instead of a table")
    expl.set_defaults(func=_explain)

    synth = sub.add_parser("synth", help="write a synthetic batch (e.g. a drifted one for demos)")
    synth.add_argument("--rows", type=int, default=50_000)
    synth.add_argument("--drift", choices=["none", "shifted"], default="none")
    synth.add_argument("--seed", type=int, default=7)
    synth.add_argument("--no-label", action="store_true", help="drop the target column")
    synth.add_argument("--output", required=True, help="batch file (.parquet or .csv)")
    synth.set_defaults(func=_synth)
    return parser


def _terminate(signum: int, frame: object) -> None:
    """SIGTERM (a CI cancel, `kill`, DVC stopping a queue) unwinds like Ctrl-C: open MLflow
    runs end as FAILED and temporary files are removed, instead of dying mid-write."""
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    """Run a command. Every failure is one line on stderr and an exit code: the project's own
    errors (README "Exit codes"), a file the OS refused (1), anything unexpected (1, with the
    traceback under --verbose). A stage run as the program itself (``argv`` None: the `mlops`
    command DVC calls) ends through :func:`_end_stage_process`; in-process callers get the
    code back."""
    args = build_parser().parse_args(argv)
    configure_logging(args.verbose)
    for name, value in paths.telemetry_defaults().items():  # telemetry.env owns them
        os.environ.setdefault(name, value)
    signal.signal(signal.SIGTERM, _terminate)
    code = _run(args)
    if argv is None and args.func is _stage:
        _end_stage_process(code)
    return code


def _run(args: argparse.Namespace) -> int:
    try:
        args.func(args)
    except MlopsError as err:
        log.error("%s", err)
        return err.exit_code
    except KeyboardInterrupt:
        log.error("interrupted: nothing half-written was kept")
        return 130
    except OSError as err:
        if args.verbose:
            raise
        where = f"{err.filename}: " if err.filename else ""
        log.error("%s%s (%s)", where, err.strerror or err, type(err).__name__)
        return 1
    except Exception as err:
        if args.verbose:
            raise
        log.error(
            "unexpected %s: %s (run with --verbose for the traceback)", type(err).__name__, err
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
