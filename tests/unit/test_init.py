"""`mlops init` on data it has never seen: scikit-learn's bundled datasets and generated tables
with nasty shapes. Each case runs the command against a copy of the real params.yaml and
contract.yaml, then reads what it wrote with the project's own loaders."""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn import datasets

from mlops_template.cli import main
from mlops_template.config import Params, load_params
from mlops_template.contract import Contract, load_contract
from mlops_template.init import infer
from mlops_template.init import table as init_table
from mlops_template.init.inference import is_quantity, words
from mlops_template.init.reading import contract_name
from tests.repo import DEMO_CONTRACT, DEMO_PARAMS
from tests.tables import CHANNELS, LABELS, nasty_table

CLASSIFICATION_GATES = {"roc_auc", "pr_auc", "log_loss", "accuracy"}


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project folder holding the shipped params.yaml and contract.yaml (the demo's)."""
    shutil.copy(DEMO_PARAMS, tmp_path / "params.yaml")
    shutil.copy(DEMO_CONTRACT, tmp_path / "contract.yaml")
    monkeypatch.chdir(tmp_path)
    return tmp_path


Run = Callable[..., tuple[int, str, str]]


@pytest.fixture
def mlops(project: Path, capsys: pytest.CaptureFixture[str]) -> Run:
    """Run `mlops init ...` in the project; return (exit code, stdout, stderr)."""

    def run(*args: str) -> tuple[int, str, str]:
        code = main(["init", *args])
        out, err = capsys.readouterr()
        return code, out, err

    return run


def written(project: Path) -> tuple[Contract, Params]:
    return load_contract(project / "contract.yaml"), load_params(project / "params.yaml")


def sklearn_csv(project: Path, loader: Callable[..., Any]) -> str:
    path = project / f"{loader.__name__.removeprefix('load_')}.csv"
    loader(as_frame=True).frame.to_csv(path, index=False)
    return path.name


def assert_no_max(contract: Contract) -> None:
    assert all(spec.max is None for spec in contract.columns.values())


# --------------------------------------------------------------------------- bundled datasets

SKLEARN = {
    # loader: (task, split, classes or None, columns with min 0)
    "iris": (
        datasets.load_iris,
        "multiclass",
        "stratified",
        [0, 1, 2],
        {"sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"},
    ),
    "breast_cancer": (
        datasets.load_breast_cancer,
        "binary",
        "stratified",
        [0, 1],
        {
            f"{prefix}{name}"
            for prefix in ("mean ", "worst ")
            for name in ("radius", "perimeter", "area")
        }
        | {"radius error", "perimeter error", "area error"},
    ),
    "wine": (datasets.load_wine, "multiclass", "stratified", [0, 1, 2], {"total_phenols"}),
    "diabetes": (datasets.load_diabetes, "regression", "random", None, set()),
    "digits": (datasets.load_digits, "multiclass", "stratified", list(range(10)), set()),
}


@pytest.mark.parametrize("name", list(SKLEARN))
def test_bundled_dataset(name: str, project: Path, mlops: Run):
    loader, task, split, classes, with_min = SKLEARN[name]
    frame = loader(as_frame=True).frame
    code, out, _ = mlops(sklearn_csv(project, loader), "--target", "target", "--force")
    assert code == 0, out
    contract, params = written(project)

    assert contract.name == name and contract.target == "target"
    assert contract.id is None and contract.timestamp is None
    features = [c for c in frame.columns if c != "target"]
    assert list(contract.columns) == list(frame.columns)
    assert {c: contract.columns[c].dtype for c in features} == dict.fromkeys(features, "float")
    assert {c for c in features if contract.columns[c].min == 0} == with_min
    assert not any(contract.columns[c].nullable for c in contract.columns)
    assert_no_max(contract)
    target = contract.columns["target"]
    if classes is None:
        assert target.dtype == "float" and target.categories is None
    else:
        assert target.dtype == "category" and target.categories == classes

    assert params.data.task == task and params.data.split.method == split
    assert params.data.source == "csv" and params.data.path == f"{name}.csv"
    assert params.evaluate.slice_column is None
    f = params.features
    assert f.datetime == f.log == f.power == f.bins == f.ratios == f.aggregates == f.drop == []
    gates = set(params.gate.metrics)
    assert gates == ({"rmse", "r2"} if task == "regression" else CLASSIFICATION_GATES)
    if task == "regression":
        assert set(params.monitor.quality_drop) == {"r2"}


def test_digits_constant_pixels_stay_features(project: Path, mlops: Run):
    """pixel_0_0 is 0 in every row: noted, kept as a float input (it may vary tomorrow)."""
    code, out, _ = mlops(
        sklearn_csv(project, datasets.load_digits), "--target", "target", "--force"
    )
    assert code == 0
    assert "one value in the sample (0.0)" in out
    contract, params = written(project)
    assert contract.columns["pixel_0_0"].dtype == "float"
    assert "pixel_0_0" not in params.features.drop


# --------------------------------------------------------------------------- nasty shapes

NASTY_DTYPES = {
    "row_id": "int",
    "event_time": "datetime",
    "signup_date": "datetime",
    "amount": "float",
    "temperature": "float",
    "n_items": "int",
    "grade": "category",
    "is_member": "bool",
    "channel": "category",
    "city": "str",
    "label": "category",
}


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_nasty_table(fmt: str, project: Path, mlops: Run):
    """Timestamps as ISO strings (CSV) or datetimes (Parquet), a date-only string column,
    missing values, a boolean, an integer id, a count, an integer code, a 10,000-value string
    column and a 3-class string target."""
    frame = nasty_table(iso_strings=fmt == "csv")
    if fmt == "csv":
        frame.to_csv(project / "nasty.csv", index=False)
    else:
        frame.to_parquet(project / "nasty.parquet")
    code, out, err = mlops(f"nasty.{fmt}", "--target", "label", "--force")
    assert code == 0, err
    contract, params = written(project)
    cols = contract.columns

    assert {name: spec.dtype for name, spec in cols.items()} == NASTY_DTYPES
    assert (contract.id, contract.target, contract.timestamp) == ("row_id", "label", "event_time")
    assert cols["row_id"].unique and not cols["row_id"].nullable
    assert {n for n, s in cols.items() if s.nullable} == {"signup_date", "amount", "channel"}
    assert {n for n, s in cols.items() if s.min is not None} == {"amount", "n_items"}
    assert cols["amount"].min == 0 and cols["n_items"].min == 0
    assert_no_max(contract)
    assert cols["grade"].categories == [1, 2, 3, 4, 5]
    assert cols["channel"].categories == CHANNELS
    assert cols["label"].categories == LABELS
    assert cols["city"].categories is None

    assert params.data.task == "multiclass"
    assert params.data.source == fmt and params.data.path == f"nasty.{fmt}"
    assert params.data.split.method == "time"
    assert params.evaluate.slice_column == "channel"
    assert [(d.column, d.parts) for d in params.features.datetime] == [
        ("event_time", ["hour", "weekday", "month"]),
        ("signup_date", ["weekday", "month"]),  # dates only: no hour
    ]
    assert params.features.drop == ["row_id", "event_time", "signup_date"]
    f = params.features
    assert f.log == f.power == f.bins == f.ratios == f.aggregates == []
    assert set(params.gate.metrics) == CLASSIFICATION_GATES
    assert set(params.monitor.quality_drop) <= CLASSIFICATION_GATES | {"f1"}
    assert "10000 distinct values (high cardinality)" in out
    assert "slice column" in out


def test_timezone_aware_timestamps(project: Path, mlops: Run):
    frame = nasty_table(500, cities=50)
    frame["event_time"] = frame["event_time"].dt.tz_localize("Europe/Paris")
    frame.to_parquet(project / "tz.parquet")
    code, _, err = mlops("tz.parquet", "--target", "label", "--force")
    assert code == 0, err
    contract, _ = written(project)
    assert contract.timestamp == "event_time"


def table(n: int = 200, seed: int = 1, **columns: Any) -> pd.DataFrame:
    """A small table with a binary target ``y`` and the given extra columns."""
    rng = np.random.default_rng(seed)
    columns.setdefault("y", rng.integers(0, 2, n))
    return pd.DataFrame({"x": rng.normal(size=n), **columns})


def inferred(frame: pd.DataFrame, target: str = "y", **kwargs: Any):
    return infer(frame, target=target, **kwargs)


def column(frame: pd.DataFrame, name: str):
    return next(c for c in inferred(frame).columns if c.name == name)


@pytest.mark.parametrize(
    ("values", "dtype", "role"),
    [
        ([f"order-{i:04d}" for i in range(200)], "str", "id"),  # a string id
        (list(range(1000, 1200)), "int", "id"),
        ([f"free text number {i}" for i in range(200)], "str", "text"),
        (list(range(200)), "int", "feature"),  # unique but not named like an id
    ],
    ids=["string-id", "int-id", "free-text", "unique-int-not-id"],
)
def test_id_and_free_text(values: list[Any], dtype: str, role: str):
    name = "order_id" if role == "id" else "note" if role == "text" else "score"
    col = column(table(**{name: values}), name)
    assert (col.dtype, col.role, col.unique) == (dtype, role, role == "id")


def test_saved_index_column_is_an_id():
    inf = inferred(table(**{"Unnamed: 0": list(range(200))}))
    assert inf.id == "Unnamed: 0" and "Unnamed: 0" in inf.drop


def test_nullable_id_like_column_is_not_the_id():
    ids = pd.array([*range(199), None], dtype="Int64")
    inf = inferred(table(customer_id=ids))
    assert inf.id is None


def test_boolean_columns():
    rng = np.random.default_rng(3)
    flags = rng.random(200) < 0.5
    with_missing = pd.Series(flags, dtype=object)
    with_missing[::10] = None
    inf = inferred(table(flag=flags, maybe=with_missing))
    cols = {c.name: c for c in inf.columns}
    assert (cols["flag"].dtype, cols["flag"].nullable) == ("bool", False)
    assert (cols["maybe"].dtype, cols["maybe"].nullable) == ("bool", True)


def test_quantity_words():
    assert words("txn_count_24h") == {"txn", "count", "24", "h"}
    assert words("CustomerID") == {"customer", "id"}
    assert is_quantity("sepal length (cm)") and is_quantity("n_items")
    assert not is_quantity("country") and not is_quantity("temperature")


def test_min_zero_only_for_non_negative_quantities():
    rng = np.random.default_rng(4)
    inf = inferred(
        table(
            price=rng.uniform(1, 9, 200),  # quantity, positive: min 0
            refund_amount=rng.normal(size=200),  # quantity, but negative values seen
            score=rng.uniform(1, 9, 200),  # positive, but not named like a quantity
        )
    )
    mins = {c.name: c.min for c in inf.columns}
    assert mins == {"x": None, "price": 0, "refund_amount": None, "score": None, "y": None}


def test_integer_codes_and_counts():
    rng = np.random.default_rng(5)
    inf = inferred(table(level=rng.integers(1, 4, 200), n_visits=rng.integers(0, 4, 200)))
    cols = {c.name: c for c in inf.columns}
    assert (cols["level"].dtype, cols["level"].categories) == ("category", [1, 2, 3])
    assert (cols["n_visits"].dtype, cols["n_visits"].min) == ("int", 0)


def test_string_cardinality_threshold():
    rng = np.random.default_rng(6)
    few = rng.choice([f"v{i}" for i in range(50)], 400)
    many = rng.choice([f"v{i}" for i in range(51)], 400)
    inf = inferred(table(400, few=few, many=many))
    cols = {c.name: c for c in inf.columns}
    assert cols["few"].dtype == "category" and len(cols["few"].categories or []) == 50
    assert cols["many"].dtype == "str"
    assert inf.slice_column is None  # 50 values is too many to slice by


def test_slice_column_prefers_the_largest_smallest_group():
    rng = np.random.default_rng(7)
    skewed = np.where(rng.random(300) < 0.97, "a", "b")
    even = rng.choice(["p", "q", "r"], 300)
    assert inferred(table(300, skewed=skewed, even=even)).slice_column == "even"


def test_non_iso_date_strings_are_datetimes():
    """Day first: pandas (and so the contract) guesses the format from the first value."""
    days = pd.date_range("2024-01-13", periods=200, freq="D")
    inf = inferred(table(when=days.strftime("%d/%m/%Y")))
    assert inf.timestamp == "when" and inf.split == "time"
    assert inf.datetime_parts == {"when": ["weekday", "month"]}


def test_dates_the_contract_cannot_parse_are_not_inputs():
    """Mixed formats: the data stage's coercion (pandas' format guessed from the first value)
    would turn them into nulls, so they are text, dropped from the features, and noted."""
    days = pd.date_range("2024-01-01", periods=200, freq="D")
    mixed = [d.strftime("%Y-%m-%d" if i % 2 else "%d/%m/%Y %H:%M") for i, d in enumerate(days)]
    inf = inferred(table(when=mixed))
    col = column(table(when=mixed), "when")
    assert (col.dtype, col.role) == ("str", "text") and "ISO 8601" in col.notes[0]
    assert inf.timestamp is None and "when" in inf.drop


# --------------------------------------------------------------------------- targets and tasks


@pytest.mark.parametrize(
    ("target", "task", "classes"),
    [
        (np.tile([True, False], 100), "binary", [0, 1]),
        (np.tile([0.0, 1.0], 100), "binary", [0, 1]),
        (np.tile(["no", "yes"], 100), "binary", ["no", "yes"]),
        (np.tile(["a", "b", "c"], 67)[:200], "multiclass", ["a", "b", "c"]),
        (np.arange(200) % 20, "multiclass", list(range(20))),
        (np.arange(200) % 21, "regression", None),
        (np.linspace(0, 1, 200), "regression", None),
    ],
    ids=["bool", "float-0-1", "yes-no", "3-strings", "20-ints", "21-ints", "floats"],
)
def test_task_from_target(target: np.ndarray, task: str, classes: list[Any] | None):
    inf = inferred(pd.DataFrame({"x": np.arange(200.0), "label": target}), target="label")
    col = next(c for c in inf.columns if c.role == "target")
    assert inf.task == task
    assert col.categories == classes
    assert col.dtype == ("float" if task == "regression" else "category")


def test_task_override():
    frame = pd.DataFrame({"x": np.arange(200.0), "label": np.arange(200) % 30})
    inf = inferred(frame, target="label", task="multiclass")
    assert inf.task == "multiclass"
    assert next(c for c in inf.columns if c.name == "label").categories == list(range(30))
    assert inferred(frame, target="label", task="regression").split == "random"


def test_target_with_some_missing_labels_is_nullable():
    y = pd.Series(np.tile([0, 1], 100), dtype="float64")
    y[:10] = np.nan
    inf = inferred(table(y=y))
    col = next(c for c in inf.columns if c.role == "target")
    assert col.nullable and "10 rows without a label" in col.notes
    assert "10 rows have no 'y'" in inf.notes[0]


def test_single_row_class_falls_back_to_random_split():
    y = np.array(["a"] * 100 + ["b"] * 99 + ["c"])
    inf = inferred(table(y=y))
    assert inf.split == "random" and any("single row" in n for n in inf.notes)


# --------------------------------------------------------------------------- errors

ERRORS: dict[str, tuple[Callable[[Path], list[str]], int, str]] = {
    "missing file": (
        lambda p: ["nope.csv", "--target", "y"],
        3,
        "mlops init: file 'nope.csv' does not exist",
    ),
    "empty file": (
        lambda p: [_write(p / "e.csv", ""), "--target", "y"],
        3,
        "file 'e.csv' is empty (no header, no rows)",
    ),
    "header only": (
        lambda p: [_write(p / "h.csv", "a,y\n"), "--target", "y"],
        3,
        "h.csv: has a header but no rows",
    ),
    "unreadable parquet": (
        lambda p: [_write(p / "bad.parquet", "not parquet at all"), "--target", "y"],
        3,
        "cannot read 'bad.parquet' as parquet",
    ),
    "duplicate columns": (
        lambda p: [_write(p / "d.csv", "a,b,a,y\n1,2,3,0\n4,5,6,1\n"), "--target", "y"],
        3,
        "d.csv: duplicate column names ['a']",
    ),
    "missing target": (
        lambda p: [_csv(p, table()), "--target", "label"],
        2,
        "--target 'label': no such column in t.csv (has x, y)",
    ),
    "one class": (
        lambda p: [_csv(p, table(y=np.ones(200, int))), "--target", "y"],
        3,
        "target 'y': one value only (1): nothing to learn",
    ),
    "all null": (
        lambda p: [_csv(p, table(y=np.full(200, np.nan))), "--target", "y"],
        3,
        "target 'y': every value is missing (200 rows read)",
    ),
    "mostly null": (
        lambda p: [_csv(p, table(y=np.where(np.arange(200) < 120, np.nan, 1.0))), "--target", "y"],
        3,
        "target 'y': 60% of values are missing (at most 50% allowed)",
    ),
    "binary with 3 classes": (
        lambda p: [_csv(p, table(y=np.arange(200) % 3)), "--target", "y", "--task", "binary"],
        2,
        "--task binary: target 'y' has 3 values, not 2",
    ),
    "regression on strings": (
        lambda p: [
            _csv(p, table(y=np.tile(["a", "b"], 100))),
            "--target",
            "y",
            "--task",
            "regression",
        ],
        2,
        "--task regression: target 'y' is not numeric (string)",
    ),
    "no data and no sql": (lambda p: ["--target", "y"], 2, "give a DATA file or URL, or --sql"),
    "sql without query": (
        lambda p: ["--sql", "sqlite:///x.db", "--target", "y"],
        2,
        "--sql URL and --query Q go together",
    ),
    "zero sample rows": (
        lambda p: [_csv(p, table()), "--target", "y", "--sample-rows", "0"],
        2,
        "--sample-rows: must be at least 1, got 0",
    ),
}


def _write(path: Path, text: str) -> str:
    path.write_text(text)
    return path.name


def _csv(project: Path, frame: pd.DataFrame) -> str:
    frame.to_csv(project / "t.csv", index=False)
    return "t.csv"


@pytest.mark.parametrize("case", list(ERRORS))
def test_errors_name_the_thing(case: str, project: Path, mlops: Run):
    make_args, exit_code, message = ERRORS[case]
    before = {n: (project / n).read_bytes() for n in ("params.yaml", "contract.yaml")}
    code, _, err = mlops(*make_args(project), "--force")
    assert code == exit_code, err
    lines = [ln for ln in err.splitlines() if "ERROR" in ln]
    assert len(lines) == 1 and message in lines[0], err
    assert {n: (project / n).read_bytes() for n in before} == before  # nothing written


def test_invalid_params_are_reported_and_nothing_is_written(project: Path, mlops: Run):
    params = project / "params.yaml"
    params.write_text(
        params.read_text().replace("  seed: 42\n  cv:", "  seed: 42\n  sede: 1\n  cv:")
    )
    before = params.read_text(), (project / "contract.yaml").read_text()
    code, _, err = mlops(_csv(project, table()), "--target", "y", "--force")
    assert code == 2
    assert "ERROR params.yaml: train.sede: unknown key" in err  # not the temporary file's name
    assert (params.read_text(), (project / "contract.yaml").read_text()) == before


# --------------------------------------------------------------------------- --force, comments


def test_refuses_to_replace_without_force(project: Path, mlops: Run):
    before = {n: (project / n).read_bytes() for n in ("params.yaml", "contract.yaml")}
    code, out, err = mlops(sklearn_csv(project, datasets.load_iris), "--target", "target")
    assert code == 2
    assert "sepal length (cm)" in out  # the inferred table is shown first
    assert (
        "nothing written: contract.yaml exists; params.yaml would change (data.task, "
        "data.source, data.path, features, evaluate.slice_column, gate.metrics); "
        "re-run with --force to write them"
    ) in err
    assert {n: (project / n).read_bytes() for n in before} == before

    assert mlops("iris.csv", "--target", "target", "--force")[0] == 0
    code, out, _ = mlops("iris.csv", "--target", "target")  # same data again: nothing to replace
    assert code == 0 and "unchanged: contract.yaml, params.yaml" in out
    wine = sklearn_csv(project, datasets.load_wine)
    assert mlops(wine, "--target", "target")[0] == 2  # another dataset: --force again


def test_version_goes_up_for_another_table_of_the_same_name(project: Path, mlops: Run):
    """The gate compares metrics only of one (contract name, version, target, task)."""
    table().to_csv(project / "data.csv", index=False)
    assert mlops("data.csv", "--target", "y", "--force")[0] == 0
    assert load_contract(project / "contract.yaml").version == 1
    table(seed=2).to_csv(project / "data.csv", index=False)  # same columns: same dataset
    assert mlops("data.csv", "--target", "y", "--force")[0] == 0
    assert load_contract(project / "contract.yaml").version == 1
    table(z=np.arange(200.0)).to_csv(project / "data.csv", index=False)  # other columns
    assert mlops("data.csv", "--target", "y", "--force")[0] == 0
    assert load_contract(project / "contract.yaml").version == 2


def test_new_contract_in_a_project_without_one(project: Path, mlops: Run):
    (project / "contract.yaml").unlink()
    code, _, err = mlops(_csv(project, table()), "--target", "y")
    assert code == 2 and "contract.yaml exists" not in err and "params.yaml would change" in err


def test_comments_and_other_sections_survive(project: Path, mlops: Run):
    original = DEMO_PARAMS.read_text()
    frame = nasty_table(600, cities=60, iso_strings=True)
    frame.to_csv(project / "n.csv", index=False)
    assert mlops("n.csv", "--target", "label", "--force")[0] == 0
    text = (project / "params.yaml").read_text()
    comments = [ln.strip() for ln in original.splitlines() if "#" in ln]
    lost = [ln for ln in comments if ln.split("#", 1)[1] not in text]
    assert lost == [  # only the comment of a gate this task never produces, removed with it
        "rmse: {max_drop_rel: 0.05}    # gates on metrics the task does not produce are skipped"
    ]
    old, new = yaml.safe_load(original), yaml.safe_load(text)
    for section in ("train", "evaluate", "tracking", "tune", "serve", "package"):
        if section == "evaluate":
            new[section]["slice_column"] = old[section]["slice_column"]
        assert new[section] == old[section], section
    assert new["data"]["synthetic"] == old["data"]["synthetic"]
    assert new["gate"]["baseline_ref"] == old["gate"]["baseline_ref"]
    assert len(text.splitlines()) > 0.9 * len(original.splitlines())


def test_yaml_special_words_stay_strings(project: Path, mlops: Run):
    """Names and values PyYAML would read as booleans or numbers are quoted."""
    rng = np.random.default_rng(8)
    frame = table(300, on=rng.choice(["yes", "no", "off"], 300), **{"1": rng.normal(size=300)})
    frame.to_csv(project / "w.csv", index=False)
    code, _, err = mlops("w.csv", "--target", "y", "--force")
    assert code == 0, err
    contract, params = written(project)
    assert contract.columns["on"].categories == ["no", "off", "yes"]
    assert "1" in contract.columns
    assert params.evaluate.slice_column == "on"


# --------------------------------------------------------------------------- sources


def test_sample_of_a_large_table_is_seeded(project: Path, mlops: Run):
    frame = nasty_table(3000, cities=400)
    frame.to_parquet(project / "big.parquet")
    code, out, _ = mlops("big.parquet", "--target", "label", "--sample-rows", "500", "--force")
    assert code == 0
    assert "big.parquet: a seeded sample of 500 of 3,000 rows" in out
    first = (project / "contract.yaml").read_text()
    assert mlops("big.parquet", "--target", "label", "--sample-rows", "500")[0] == 0  # same
    assert (project / "contract.yaml").read_text() == first


def test_sql_source(project: Path, mlops: Run):
    frame = nasty_table(400, cities=40, iso_strings=True)
    with sqlite3.connect(project / "raw.db") as conn:
        frame.to_sql("events", conn, index=False)
    url, query = "sqlite:///raw.db", "SELECT * FROM events"
    code, out, err = mlops("--sql", url, "--query", query, "--target", "label", "--force")
    assert code == 0, err
    contract, params = written(project)
    assert params.data.source == "sql"
    assert (params.data.sql.url, params.data.sql.query) == (url, query)
    assert contract.name == "raw" and contract.timestamp == "event_time"
    assert "the query's result is not versioned" in out


def test_url_source_is_not_copied(project: Path, mlops: Run, tmp_path_factory):
    elsewhere = tmp_path_factory.mktemp("remote") / "remote.csv"
    table().to_csv(elsewhere, index=False)
    url = elsewhere.as_uri()
    code, out, err = mlops(url, "--target", "y", "--force")
    assert code == 0, err
    _, params = written(project)
    assert params.data.path == url and params.data.source == "csv"
    assert "is not versioned: dvc.lock pins only the split" in out
    assert not (project / "data").exists()


def test_local_file_outside_the_project_is_copied_in(project: Path, mlops: Run, tmp_path_factory):
    elsewhere = tmp_path_factory.mktemp("downloads") / "mine.csv"
    table().to_csv(elsewhere, index=False)
    code, out, err = mlops(str(elsewhere), "--target", "y", "--force")
    assert code == 0, err
    _, params = written(project)
    assert params.data.path == "data/raw/mine.csv"
    assert (project / "data/raw/mine.csv").read_bytes() == elsewhere.read_bytes()
    assert "no DVC repository here" in out  # this test project has no .dvc/


def test_source_kinds():
    assert init_table("s3://bucket/x.parquet?versionId=3").fmt == "parquet"
    assert init_table("data/x.parq").fmt == "parquet"
    assert init_table("s3://bucket/x.csv.gz").fmt == "csv"
    assert not init_table("s3://bucket/x.csv").local
    assert init_table("sqlite:///data/raw.db", "SELECT 1").fmt == "sql"
    assert contract_name(init_table("data/my table.v2.csv")) == "my-table"


def test_the_data_stage_depends_on_the_data_file(project: Path, mlops: Run, tmp_path_factory):
    """Re-running init on another file swaps the dependency; a URL leaves none; the rest of
    dvc.yaml (comments, other deps, other stages) is untouched."""
    shipped = Path(__file__).parents[2] / "dvc.yaml"
    shutil.copy(shipped, project / "dvc.yaml")
    table().to_csv(project / "first.csv", index=False)
    table().to_csv(project / "second.csv", index=False)

    def data_deps() -> list[str]:
        return yaml.safe_load((project / "dvc.yaml").read_text())["stages"]["data"]["deps"]

    shipped_deps = data_deps()
    code, out, err = mlops("first.csv", "--target", "y", "--force")
    assert code == 0, err
    assert data_deps() == [*shipped_deps, "first.csv"] and "dvc.yaml" in out
    assert mlops("second.csv", "--target", "y", "--force")[0] == 0
    assert data_deps() == [*shipped_deps, "second.csv"]
    assert mlops((project / "first.csv").as_uri(), "--target", "y", "--force")[0] == 0
    assert data_deps() == shipped_deps
    assert (project / "dvc.yaml").read_text() == shipped.read_text()  # byte for byte


def test_nothing_is_written_when_dvc_yaml_has_no_data_stage(project: Path, mlops: Run):
    (project / "dvc.yaml").write_text("stages:\n  train:\n    cmd: echo\n")
    table().to_csv(project / "mine.csv", index=False)
    before = (project / "params.yaml").read_text()
    code, _, err = mlops("mine.csv", "--target", "y", "--force")
    assert code == 2 and "dvc.yaml: no stage 'data'" in err, err
    assert (project / "params.yaml").read_text() == before


@pytest.mark.parametrize("before", ["missing", "filled"])
def test_card_placeholders_are_written_and_the_owners_words_kept(
    before: str, project: Path, mlops: Run
):
    """The model card's own words: placeholders the card shows as "not stated"; text the
    owners wrote survives a new `mlops init`."""
    raw = yaml.safe_load((project / "params.yaml").read_text())
    if before == "missing":
        del raw["card"]
    else:
        raw["card"] = {"intended_use": "Rank wines for tasting.", "owners": ["Cellar team"]}
    (project / "params.yaml").write_text(yaml.safe_dump(raw))
    code, out, _ = mlops(sklearn_csv(project, datasets.load_wine), "--target", "target", "--force")
    assert code == 0, out
    written_card = yaml.safe_load((project / "params.yaml").read_text())["card"]
    kept = {"intended_use": "Rank wines for tasting.", "owners": ["Cellar team"]}
    expected = {
        "intended_use": "",
        "out_of_scope_use": "",
        "owners": [],
        "contact": "",
        "license": "",
        "limitations": [],
    } | (kept if before == "filled" else {})
    assert {k: written_card[k] for k in expected} == expected
    assert written(project)[1].card.intended_use == expected["intended_use"]
