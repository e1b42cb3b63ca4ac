"""The Dask side of the pipeline (``dask.enabled: true``, docs/scale-out.md).

Only stages that run on the cluster import this module, and it imports ``dask`` /
``distributed`` / ``lightgbm.dask`` inside its functions: an in-process run never loads them.

- :func:`connect`: a client of ``dask.address`` (env ``MLOPS_DASK_ADDRESS``), or of a
  ``LocalCluster`` sized by ``dask.workers`` / ``dask.threads_per_worker`` / ``dask.memory_limit``;
- :func:`require_dask_model`: the in-process models say so in one line (exit 2);
- :func:`fit_lightgbm`: the preprocessing fitted on a seeded sample, applied per partition,
  then ``lightgbm.dask`` and ``to_local()``: the same scikit-learn pipeline as in process.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from mlops_template.config import DASK_MODELS, DaskParams, Task, TrainParams
from mlops_template.errors import ClusterError, ConfigError, DataError

if TYPE_CHECKING:
    from distributed import Client

log = logging.getLogger(__name__)

DASK_ENV = "MLOPS_DASK_ADDRESS"
CONNECT_TIMEOUT = "10s"


def address(dask: DaskParams) -> str:
    """The scheduler to use: env ``MLOPS_DASK_ADDRESS``, else ``dask.address`` ("" = local)."""
    return os.environ.get(DASK_ENV) or dask.address


def require_dask_model(model: str) -> None:
    """``train.model`` must be one that trains on a cluster when ``dask.enabled`` is true."""
    if model not in DASK_MODELS:
        raise ConfigError(
            f"train.model: {model!r} trains in one process only; with dask.enabled: true "
            f"choose {' or '.join(DASK_MODELS)} (or set dask.enabled: false)"
        )


@contextmanager
def connect(dask: DaskParams) -> Iterator[Client]:
    """A client of the configured scheduler, or of a fresh loopback ``LocalCluster`` that is
    closed on exit. An unreachable scheduler is one line naming its address (exit 11)."""
    from distributed import Client

    where = address(dask)
    if where:
        try:
            client = Client(where, timeout=CONNECT_TIMEOUT)
        except (OSError, TimeoutError) as err:
            raise ClusterError(
                f"dask.address: cannot reach the Dask scheduler at {where} within "
                f"{CONNECT_TIMEOUT} ({type(err).__name__}); start it or fix the address"
            ) from None
        workers = len(client.scheduler_info()["workers"])
        log.info("dask: scheduler %s, %d workers", where, workers)
        try:
            yield client
        finally:
            client.close()
        return
    with local_cluster(dask) as cluster, Client(cluster) as client:
        yield client


@contextmanager
def local_cluster(dask: DaskParams) -> Iterator[Any]:
    """A ``LocalCluster`` on loopback: ``dask.workers`` processes of ``dask.threads_per_worker``
    threads and ``dask.memory_limit`` each, no dashboard."""
    from distributed import LocalCluster

    with LocalCluster(
        n_workers=dask.workers,
        threads_per_worker=dask.threads_per_worker,
        memory_limit=dask.memory_limit,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
    ) as cluster:
        log.info(
            "dask: LocalCluster of %d workers x %d threads, %s each",
            dask.workers,
            dask.threads_per_worker,
            dask.memory_limit,
        )
        yield cluster


# --------------------------------------------------------------------------- lightgbm


def lightgbm_dask_estimator(task: Task, train: TrainParams, client: Client) -> Any:
    """``DaskLGBMClassifier`` / ``DaskLGBMRegressor`` with the in-process hyper-parameters."""
    from lightgbm.dask import DaskLGBMClassifier, DaskLGBMRegressor

    from mlops_template.model import lightgbm_kwargs

    kwargs = lightgbm_kwargs(task, train.lightgbm.model_dump(), train.seed)
    kwargs.pop("n_jobs", None)  # lightgbm.dask: the worker's threads
    if task == "regression":
        return DaskLGBMRegressor(client=client, **kwargs)
    return DaskLGBMClassifier(client=client, **kwargs)


def read_parquet(path: Any, dask: DaskParams) -> Any:
    """A Dask DataFrame of a Parquet file or partitioned folder (glob, fsspec URL): one
    partition per file (dask's own reader may merge small files, which changes the partition
    count between graph and compute: lightgbm.dask's ``lengths`` then disagree). A single file
    (a split written in process) is cut into partitions of about ``dask.partition_rows``."""
    frame, _ = read_dataset(str(path))
    if frame.npartitions == 1:
        rows = len(frame)
        if rows > dask.partition_rows:
            frame = frame.repartition(npartitions=-(-rows // dask.partition_rows))
    return frame


def sample(frame: Any, rows: int, seed: int) -> pd.DataFrame:
    """A seeded sample of about ``rows`` rows of a Dask DataFrame, in this process."""
    total = len(frame)
    if total <= rows:
        return frame.compute()
    return frame.sample(frac=rows / total, random_state=seed).compute()


def _relabel(model: Any, classes: np.ndarray) -> None:
    """Give a classifier trained on class codes 0..k-1 the original labels (what
    ``LGBMClassifier.fit`` records when given them): ``classes_`` and ``predict`` then return
    labels, exactly as the in-process model does."""
    from lightgbm.compat import _LGBMLabelEncoder

    encoder = _LGBMLabelEncoder().fit(classes)
    model._le = encoder
    model._classes = encoder.classes_
    model._n_classes = len(encoder.classes_)
    model._class_map = dict(zip(encoder.classes_, encoder.transform(encoder.classes_), strict=True))


def fit_lightgbm(
    frame: Any,
    *,
    pipeline: Any,
    target: str,
    task: Task,
    train: TrainParams,
    dask: DaskParams,
    client: Client,
) -> Any:
    """``pipeline`` [preprocess, LGBM estimator] (as :func:`model.make_pipeline` builds it)
    fitted on a Dask DataFrame of features that never sits in this process.

    The preprocessing (imputers, one-hot and target encoders) is fitted on a seeded sample of
    ``dask.sample_rows`` rows, then applied to each partition on the workers; LightGBM trains
    on all rows across the workers (each worker on its own partitions); ``to_local()`` makes
    the estimator a plain ``LGBMClassifier`` / ``LGBMRegressor``, so the result is pickled,
    exported to ONNX and served exactly like the in-process model. Classes are coded 0..k-1
    here, from the labels of the whole split, so every worker agrees on them."""
    head = sample(frame, dask.sample_rows, dask.seed)
    preprocess = pipeline.steps[0][1].fit(head.drop(columns=[target]), head[target])
    columns = [f"f{i}" for i in range(len(preprocess.get_feature_names_out()))]

    def transform(part: pd.DataFrame) -> pd.DataFrame:
        values = np.asarray(preprocess.transform(part.drop(columns=[target])), dtype="float64")
        out = pd.DataFrame(values, columns=columns, index=part.index)
        out[target] = part[target]
        return out

    meta = pd.DataFrame({c: pd.Series(dtype="float64") for c in columns})
    meta[target] = frame._meta[target]
    # one pass over the data: the transformed partitions stay on their workers
    (ready,) = client.persist([frame.map_partitions(transform, meta=meta)])
    X = ready[columns].to_dask_array(lengths=True)
    y_frame = ready[target]
    classes = None
    if task != "regression":
        classes = np.sort(y_frame.dropna().unique().compute().to_numpy())
        y_frame = y_frame.map_partitions(
            lambda s: pd.Series(np.searchsorted(classes, s.to_numpy()), index=s.index),
            meta=(target, "int64"),
        )
    y = y_frame.to_dask_array(lengths=True)
    estimator = lightgbm_dask_estimator(task, train, client)
    with warnings.catch_warnings():  # "n_jobs will be ignored": the workers' threads are used
        warnings.filterwarnings("ignore", message="Parameter n_jobs", category=UserWarning)
        estimator.fit(X, y)
    local = estimator.to_local()
    if classes is not None:
        _relabel(local, classes)
    pipeline.steps[-1] = (pipeline.steps[-1][0], local)
    return pipeline


def worker_memory(client: Client) -> dict[str, dict[str, float]]:
    """Per worker: its memory limit and the process memory the scheduler last heard of (MiB)."""
    info = client.scheduler_info()["workers"]
    mib = 1 << 20
    return {
        name: {
            "limit_mib": w["memory_limit"] / mib,
            "memory_mib": w["metrics"]["memory"] / mib,
        }
        for name, w in info.items()
    }


# --------------------------------------------------------------------------- data


def dataset_files(location: str, name: str = "data.path") -> list[str]:
    """The Parquet files of a dataset: a folder (every ``*.parquet`` below it), a glob, or a
    single file; local or any fsspec URL. Sorted, so partition numbers are stable."""
    import fsspec

    fs, root = fsspec.core.url_to_fs(location)
    if any(ch in root for ch in "*?["):
        found = fs.glob(root)
    elif fs.isdir(root):
        found = [p for p in fs.find(root) if p.endswith(".parquet")]
    else:
        found = [root] if fs.exists(root) else []
    if not found:
        raise DataError(f"{name}: no Parquet files at {location}")
    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    prefix = "" if protocol in ("file", "local") else f"{protocol}://"
    return [prefix + p for p in sorted(found)]


def _read_file(path: str) -> pd.DataFrame:
    import fsspec

    with fsspec.open(path, "rb") as fh:
        return pd.read_parquet(fh)


def read_dataset(location: str) -> tuple[Any, list[str]]:
    """A Dask DataFrame with one partition per Parquet file of ``location`` (so a contract
    violation can name its file), and the files."""
    import dask.dataframe as dd

    files = dataset_files(location)
    meta = _read_file(files[0]).head(0)
    return dd.from_map(_read_file, files, meta=meta, enforce_metadata=False), files


def in_test(part: pd.DataFrame, key: list[str], test_size: float, seed: int) -> np.ndarray:
    """Per row: does it belong to the test split? A seeded hash of the ``key`` columns (the
    contract's id, else the whole row) below ``test_size``: the same answer for a row
    wherever it lies and however the data is partitioned."""
    hashed = pd.util.hash_pandas_object(
        part[key], index=False, hash_key=f"mlops{seed:011d}"[-16:]
    ).to_numpy()
    return np.asarray(hashed / float(2**64) < test_size)


def _split_partition(
    part: pd.DataFrame,
    number: int,
    *,
    contract: Any,
    key: list[str],
    cutoff: Any,
    test_size: float,
    seed: int,
    out: tuple[str, str],
) -> dict[str, Any]:
    """Validate one partition and write its rows to ``out`` (train, test folders); or return
    its failure table (nothing written)."""
    from mlops_template.contract import check

    report = check(part.reset_index(drop=True), contract)  # rows: positions in the file
    if not report.ok:
        failures = report.failures.copy()
        failures.insert(0, "partition", number)
        return {"failures": failures}
    valid = report.valid
    valid = valid.loc[valid[contract.target].notna()]
    if cutoff is not None:
        test = np.asarray(valid[contract.timestamp] > cutoff)
    else:
        test = in_test(valid, key, test_size, seed)
    name = f"part-{number:05d}.parquet"
    valid.loc[~test].to_parquet(f"{out[0]}/{name}", index=False)
    valid.loc[test].to_parquet(f"{out[1]}/{name}", index=False)
    return {"train": int((~test).sum()), "test": int(test.sum())}


def describe_partition_failures(failures: pd.DataFrame, files: list[str]) -> str:
    """First line: the first failing partition, its file, column, check and rows; then one
    line per (partition, column, check)."""
    lines = []
    for (number, column, check_name), group in failures.groupby(
        ["partition", "column", "check"], sort=True
    ):
        rows = ", ".join(str(i) for i in group["index"].head(5).tolist())
        examples = ", ".join(map(str, group["failure_case"].drop_duplicates().head(3)))
        lines.append(
            f"partition {number} ({files[int(number)]}): column {column}: check {check_name} "
            f"failed for {len(group)} row(s) (rows {rows}), e.g. {examples}"
        )
    head = f"data.path: {failures['partition'].nunique()} partition(s) break the data contract"
    return f"{head}: {lines[0]}\n" + "\n".join(f"  - {line}" for line in lines)


def prepare_splits(
    location: str,
    contract: Any,
    split: Any,
    targets: tuple[Any, Any],
) -> tuple[int, int]:
    """The data stage on the cluster: read the partitioned dataset, validate every partition
    against the contract, split each row by a seeded hash of the contract's id (or by time),
    write partitioned Parquet splits. On a violation nothing is written and
    ContractViolation names the partition, file, column and rows (exit 3).

    Needs a running client (:func:`connect`); the output folders must be on a filesystem the
    workers share with this process."""
    import shutil
    import tempfile
    from pathlib import Path

    import dask

    from mlops_template.errors import ContractViolation

    frame, files = read_dataset(location)
    cutoff = None
    if split.method == "time":
        if not contract.timestamp:
            raise ConfigError("data.split.method: 'time' needs a contract timestamp column")
        times = dd_to_datetime(frame[contract.timestamp])
        cutoff = times.quantile(1 - split.test_size).compute()
    elif split.method == "stratified":
        log.info("data on Dask: stratified split by a seeded hash (class shares kept on average)")
    key = [contract.id] if contract.id else list(frame.columns)
    for target in targets:
        Path(target).parent.mkdir(parents=True, exist_ok=True)
    tmp = [
        Path(tempfile.mkdtemp(prefix=f".{Path(t).name}.", dir=Path(t).parent)).resolve()
        for t in targets
    ]
    try:
        tasks = [
            dask.delayed(_split_partition)(
                part,
                number,
                contract=contract,
                key=key,
                cutoff=cutoff,
                test_size=split.test_size,
                seed=split.seed,
                out=(str(tmp[0]), str(tmp[1])),
            )
            for number, part in enumerate(frame.to_delayed())
        ]
        results = dask.compute(*tasks)
        bad = [r["failures"] for r in results if "failures" in r]
        if bad:
            table = pd.concat(bad, ignore_index=True)
            raise ContractViolation(describe_partition_failures(table, files), table)
        for folder, target in zip(tmp, targets, strict=True):
            replace_path(folder, Path(target))
    finally:
        for folder in tmp:
            shutil.rmtree(folder, ignore_errors=True)
    return sum(r["train"] for r in results), sum(r["test"] for r in results)


def dd_to_datetime(series: Any) -> Any:
    import dask.dataframe as dd

    return dd.to_datetime(series)


def replace_path(source: Any, target: Any) -> None:
    """Move a finished folder over ``target`` (a file or a folder of an earlier run)."""
    import shutil
    from pathlib import Path

    target = Path(target)
    if target.is_dir():
        shutil.rmtree(target)
    elif target.exists():
        target.unlink()
    os.replace(source, target)


def features_partitioned(source: Any, target: Any, spec: Any) -> int:
    """The feature function applied to each partition of a partitioned split, written as a
    partitioned Parquet folder (the same file names)."""
    import shutil
    import tempfile
    from pathlib import Path

    import dask

    from mlops_template.features import build_features

    files = dataset_files(str(source))
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent)).resolve()

    def one(path: str) -> int:
        frame = build_features(_read_file(path), spec)
        frame.to_parquet(tmp / Path(path).name, index=False)
        return int(frame.shape[1])

    try:
        widths = dask.compute(*[dask.delayed(one)(f) for f in files])
        replace_path(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return int(widths[0]) if widths else 0


# --------------------------------------------------------------------------- score


def _score_partition(
    part: pd.DataFrame,
    number: int,
    *,
    model: Any,
    onnx_bytes: bytes | None,
    meta: Any,
    contract: Any,
    out: str,
    rejected_out: str,
) -> tuple[int, int]:
    """Validate, featurize and predict one partition (an onnxruntime session of its own, or
    the pickled pipeline when ONNX did not pass its parity check); write its predictions."""
    from mlops_template.model import decide
    from mlops_template.onnx_path import OnnxModel, split_pipeline
    from mlops_template.score import split_valid

    good, bad = split_valid(part.reset_index(drop=True), contract)
    name = f"part-{number:05d}"
    if len(bad):
        bad.to_csv(f"{rejected_out}/{name}.csv", index=False)
    if not len(good):
        return 0, len(bad)
    X = good[meta.input_columns]
    if onnx_bytes is not None:
        session = OnnxModel(onnx_bytes)
        features = split_pipeline(model)[0].transform(X)
        regression = meta.task == "regression"
        raw = session.predict(features) if regression else session.predict_proba(features)
    else:
        raw = model.predict(X) if meta.task == "regression" else model.predict_proba(X)
    prediction = decide(raw, meta).frame(meta.classes)
    scored = pd.concat([good.reset_index(drop=True), prediction], axis=1)
    scored.to_parquet(f"{out}/{name}.parquet", index=False)
    return len(scored), len(bad)


def score(input_path: str, output: Any, contract: Any, dask: DaskParams) -> tuple[int, int]:
    """`mlops score` on the cluster: every partition (file) of ``input_path`` is validated and
    predicted on a worker with an ONNX session of its own; predictions are written as a
    partitioned Parquet folder ``output``, rejected rows with their reason as CSV parts in
    ``<output stem>.rejected/``. Returns (scored rows, rejected rows)."""
    import shutil
    import tempfile
    from pathlib import Path

    import dask as dask_

    from mlops_template.model import load
    from mlops_template.onnx_path import export

    model, meta = load()
    frame, files = read_dataset(input_path)
    head = _read_file(files[0]).head(1000)
    valid_head = head[[c for c in meta.input_columns if c in head.columns]]
    onnx_bytes, record = export(model, valid_head, meta.task, tolerance=1e-5)
    log.info("score on Dask: %s runtime (%s)", record["runtime"], record.get("onnx_max_abs_diff"))
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    side = output.with_name(output.stem + ".rejected")
    tmp_out = Path(tempfile.mkdtemp(prefix=f".{output.name}.", dir=output.parent)).resolve()
    tmp_side = Path(tempfile.mkdtemp(prefix=f".{side.name}.", dir=output.parent)).resolve()
    try:
        with connect(dask):
            tasks = [
                dask_.delayed(_score_partition)(
                    part,
                    number,
                    model=model,
                    onnx_bytes=onnx_bytes,
                    meta=meta,
                    contract=contract,
                    out=str(tmp_out),
                    rejected_out=str(tmp_side),
                )
                for number, part in enumerate(frame.to_delayed())
            ]
            counts = dask_.compute(*tasks)
        replace_path(tmp_out, output)
        replace_path(tmp_side, side)
    finally:
        shutil.rmtree(tmp_out, ignore_errors=True)
        shutil.rmtree(tmp_side, ignore_errors=True)
    scored, rejected = sum(c[0] for c in counts), sum(c[1] for c in counts)
    log.info("scored %d rows -> %s; %d rejected -> %s", scored, output, rejected, side)
    return scored, rejected


# --------------------------------------------------------------------------- monitor

PSI_BINS = 10
PSI_FLOOR = 1e-4  # share given to an empty bin, so PSI stays finite


def _counts(
    part: pd.DataFrame, edges: dict[str, np.ndarray], levels: dict[str, list[Any]]
) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for column, cuts in edges.items():
        values = pd.to_numeric(part[column], errors="coerce").to_numpy(dtype="float64")
        values = values[~np.isnan(values)]
        out[column] = np.bincount(
            np.searchsorted(cuts, values, side="right"), minlength=len(cuts) + 1
        )
    for column, known in levels.items():
        counts = part[column].astype("string").value_counts(dropna=True)
        row = [int(counts.get(v, 0)) for v in known]
        out[column] = np.array([*row, int(counts.sum()) - sum(row)])  # last: values unseen
    return out


def _psi(expected: np.ndarray, actual: np.ndarray) -> float:
    e = np.maximum(expected / max(expected.sum(), 1), PSI_FLOOR)
    a = np.maximum(actual / max(actual.sum(), 1), PSI_FLOOR)
    return float(np.sum((a - e) * np.log(a / e)))


def drift_psi(
    reference: pd.DataFrame, location: str, columns: list[str], dask: DaskParams
) -> dict[str, Any]:
    """Population stability index per column of the whole current dataset against the
    reference, counted on the workers partition by partition: numeric columns in the
    reference's deciles, categorical ones per reference value (plus one bin for unseen
    values). Exact counts over every row; no row leaves its worker."""
    import dask as dask_

    edges: dict[str, np.ndarray] = {}
    levels: dict[str, list[Any]] = {}
    for column in columns:
        series = reference[column]
        if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
            qs = np.nanquantile(
                series.to_numpy(dtype="float64"), np.linspace(0, 1, PSI_BINS + 1)[1:-1]
            )
            edges[column] = np.unique(qs)
        else:
            levels[column] = sorted(series.dropna().astype("string").unique().tolist())
    expected = _counts(reference, edges, levels)
    frame, _ = read_dataset(location)
    with connect(dask):
        parts = dask_.compute(
            *[dask_.delayed(_counts)(p, edges, levels) for p in frame.to_delayed()]
        )
    result = {}
    for column in columns:
        actual = np.sum([p[column] for p in parts], axis=0)
        result[column] = {
            "psi": round(_psi(expected[column], actual), 6),
            "rows": int(actual.sum()),
        }
    return {"method": "psi", "bins": PSI_BINS, "columns": result}


def sample_dataset(
    location: str, rows: int, seed: int, dask: DaskParams
) -> tuple[pd.DataFrame, int]:
    """A seeded sample of about ``rows`` rows of a partitioned dataset (what the Evidently
    report runs on) and the dataset's row count, computed on the cluster."""
    frame, _ = read_dataset(location)
    with connect(dask):
        total = len(frame)
        if total <= rows:
            return frame.compute().reset_index(drop=True), total
        picked = frame.sample(frac=rows / total, random_state=seed).compute()
    return picked.reset_index(drop=True), total
