"""The contract accepts good data and rejects each kind of bad data, naming the failing check."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlops_template import sources
from mlops_template.config import DataParams
from mlops_template.contract import check, load_contract, validate
from mlops_template.errors import ConfigError, ContractViolation, DataError
from mlops_template.stages.data import ingest

# a generated project's quick check (the template's CI runs these: docs/template.md)
pytestmark = pytest.mark.smoke


def test_generated_data_satisfies_the_contract(transactions, contract):
    report = check(transactions, contract)
    assert report.ok, report.failures
    assert str(report.valid["channel"].dtype) == "str"


def _drop_column(df: pd.DataFrame) -> pd.DataFrame:
    return df.drop(columns=["country"])


def _wrong_dtype(df: pd.DataFrame) -> pd.DataFrame:
    df["amount"] = df["amount"].astype(object)
    df.loc[2, "amount"] = "twelve"
    return df


def _out_of_range(df: pd.DataFrame) -> pd.DataFrame:
    df.loc[3, "amount"] = -5.0
    return df


def _unknown_category(df: pd.DataFrame) -> pd.DataFrame:
    df["channel"] = df["channel"].astype(str)
    df.loc[4, "channel"] = "carrier_pigeon"
    return df


def _duplicate_id(df: pd.DataFrame) -> pd.DataFrame:
    df.loc[5, "transaction_id"] = df.loc[6, "transaction_id"]
    return df


def _null_not_allowed(df: pd.DataFrame) -> pd.DataFrame:
    df["amount"] = df["amount"].astype("float64")
    df.loc[7, "amount"] = np.nan
    return df


def _bad_label(df: pd.DataFrame) -> pd.DataFrame:
    df.loc[8, "is_fraud"] = 7
    return df


@pytest.mark.parametrize(
    ("corrupt", "column", "check_name", "example"),
    [
        (_drop_column, "country", "column_in_dataframe", "country"),
        (_wrong_dtype, "amount", "coerce_dtype('float64')", "twelve"),
        (_out_of_range, "amount", "greater_than_or_equal_to(0.0)", "-5.0"),
        (_unknown_category, "channel", "isin", "carrier_pigeon"),
        (_duplicate_id, "transaction_id", "field_uniqueness", None),
        (_null_not_allowed, "amount", "not_nullable", "null"),
        (_bad_label, "is_fraud", "isin([0, 1])", "7"),
    ],
)
def test_each_kind_of_bad_data_is_named(
    transactions: pd.DataFrame,
    contract,
    corrupt: Callable[[pd.DataFrame], pd.DataFrame],
    column: str,
    check_name: str,
    example: str | None,
):
    bad = corrupt(transactions.head(200).copy())
    with pytest.raises(ContractViolation) as caught:
        validate(bad, contract, source="batch.csv")
    failures = caught.value.failures
    hits = failures[(failures["column"] == column) & failures["check"].str.startswith(check_name)]
    assert not hits.empty, failures
    message = str(caught.value)
    assert f"column {column}" in message and "batch.csv" in message
    if example is not None:
        assert example in hits["failure_case"].tolist()


def test_all_failures_are_collected_lazily(transactions, contract):
    bad = _out_of_range(_unknown_category(transactions.head(100).copy()))
    report = check(bad, contract)
    assert {"amount", "channel"} <= set(report.failures["column"])


def test_empty_frame_is_rejected(transactions, contract):
    report = check(transactions.head(0), contract)
    assert not report.ok
    assert report.failures["check"].tolist() == ["has_rows"]


def test_inputs_only_schema_does_not_require_the_label(transactions, contract):
    inputs = transactions.drop(columns=["is_fraud"]).head(10)
    assert check(inputs, contract, with_target=False).ok
    assert not check(inputs, contract).ok


def test_undeclared_columns_are_filtered_out(transactions, contract):
    extra = transactions.head(10).assign(surprise=1)
    assert "surprise" not in validate(extra, contract).columns


def test_empty_file_is_a_clear_data_error(tmp_path: Path):
    path = tmp_path / "empty.csv"
    path.write_text("")
    with pytest.raises(DataError, match=r"^data\.path: file '.*empty\.csv' is empty"):
        ingest(DataParams(source="csv", path=str(path)))


def test_unreadable_file_is_a_clear_data_error(tmp_path: Path):
    path = tmp_path / "broken.parquet"
    path.write_bytes(b"this is not parquet")
    with pytest.raises(DataError, match=r"^data\.path: cannot read '.*broken\.parquet'"):
        ingest(DataParams(source="parquet", path=str(path)))


def test_missing_file_is_named(tmp_path: Path):
    with pytest.raises(DataError, match=r"nope\.csv.*does not exist"):
        ingest(DataParams(source="csv", path=str(tmp_path / "nope.csv")))


def test_header_only_csv_breaks_the_contract(tmp_path: Path, transactions, contract):
    path = tmp_path / "header.csv"
    transactions.head(0).to_csv(path, index=False)
    assert not check(sources.read(sources.table(path)), contract).ok


def test_sql_source_reads_a_sqlite_file(tmp_path: Path, transactions, contract):
    import sqlalchemy

    url = f"sqlite:///{tmp_path / 'raw.db'}"
    transactions.head(50).to_sql("tx", sqlalchemy.create_engine(url), index=False)
    frame = ingest(DataParams(source="sql", sql={"url": url, "query": "select * from tx"}))
    assert len(validate(frame, contract)) == 50


@pytest.mark.parametrize(
    ("patch", "named"),
    [
        ({"target": "label"}, "target column 'label' is not declared"),
        ({"columns": {"a": {"dtype": "category"}}}, "columns.a"),
        ({"columns": {"a": {"dtype": "decimal"}}}, "columns.a.dtype"),
        ({"columns": {"a": {"dtype": "str", "min": 1}}}, "min/max only apply"),
    ],
)
def test_bad_contract_file_names_the_field(tmp_path: Path, patch, named):
    import yaml

    raw = {"name": "x", "target": "a", "columns": {"a": {"dtype": "int"}}} | patch
    path = tmp_path / "contract.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match=named):
        load_contract(path)


def test_a_missing_boolean_stays_missing_and_reaches_the_model_as_nan() -> None:
    """numpy bool has no missing value: a nullable bool column is pandas' 'boolean', and the
    feature function hands the model 1.0 / 0.0 / NaN (the imputer decides), never True."""
    from mlops_template.config import FeaturesParams
    from mlops_template.contract import Contract
    from mlops_template.features import build_features

    contract = Contract.model_validate(
        {
            "name": "t",
            "target": "y",
            "columns": {
                "member": {"dtype": "bool", "nullable": True},
                "y": {"dtype": "category", "categories": [0, 1]},
            },
        }
    )
    raw = pd.DataFrame({"member": [True, None, False], "y": [1, 0, 1]})
    valid = validate(raw, contract)
    assert valid["member"].isna().tolist() == [False, True, False]
    out = build_features(valid, FeaturesParams())["member"].to_numpy()
    np.testing.assert_array_equal(out, [1.0, np.nan, 0.0])


def test_rows_without_a_label_are_left_out_of_both_splits() -> None:
    from mlops_template.stages.data import labelled

    frame = pd.DataFrame({"x": [1, 2, 3, 4], "y": pd.array([1, None, 0, None], dtype="Int64")})
    assert labelled(frame, "y")["x"].tolist() == [1, 3]
    with pytest.raises(DataError, match="y: the target is missing in every row"):
        labelled(frame.assign(y=pd.array([None] * 4, dtype="Int64")), "y")


TEXT = ["in_store", "contactless", "online", "atm"]


@pytest.mark.parametrize(
    ("categories", "missing", "valid"),
    [
        (TEXT, False, True),
        (TEXT, True, False),  # channel is not nullable
        ([*TEXT, "carrier_pigeon"], False, False),  # a category the contract lacks
        ([1, 2, 3, 4], False, False),  # not text: pandera's own coercion, then isin fails
    ],
)
def test_categorical_text_columns_validate_as_their_text(
    transactions, contract, categories, missing, valid
):
    """A categorical column (as Parquet files and the generator give) validates exactly as the
    same values given as text: same valid frame, same failures."""
    low = -1 if missing else 0
    codes = np.random.default_rng(0).integers(low, len(categories), len(transactions))
    as_category = transactions.assign(channel=pd.Categorical.from_codes(codes, categories))
    as_text = as_category.assign(channel=as_category["channel"].astype("str"))
    fast, slow = check(as_category, contract), check(as_text, contract)
    assert fast.ok is slow.ok is valid
    if valid:
        pd.testing.assert_frame_equal(fast.valid, slow.valid)
        assert str(fast.valid["channel"].dtype) == "str"
    else:
        pd.testing.assert_frame_equal(fast.failures, slow.failures)


def test_validation_leaves_the_callers_frame_as_it_was(transactions, contract):
    given = transactions.assign(
        amount=transactions["amount"].round().astype("int64"),  # coerced to float
        channel=transactions["channel"].astype("category"),  # decoded to text
        note="undeclared",  # filtered out
    )
    before = given.copy(deep=True)
    report = check(given, contract)
    assert report.ok, report.failures
    assert str(report.valid["amount"].dtype) == "float64" and "note" not in report.valid
    pd.testing.assert_frame_equal(given, before)
