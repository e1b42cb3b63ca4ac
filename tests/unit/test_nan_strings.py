"""Dask hands string columns over as pyarrow strings with ``pd.NA`` for missing values;
scikit-learn's imputers refuse ``pd.NA``. distributed.nan_strings gives every partition and
sample a model sees on the cluster the in-process dtype (pandas' "str", NaN)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.impute import SimpleImputer

from mlops_template.distributed import nan_strings


def test_pd_na_strings_become_what_the_in_process_pipeline_gets() -> None:
    part = pd.DataFrame(
        {
            "city": pd.array(["a", None, "b"], dtype="string[pyarrow]"),
            "amount": [1.0, np.nan, 3.0],
        }
    )
    imputer = SimpleImputer(strategy="most_frequent")
    with pytest.raises((TypeError, ValueError)):
        imputer.fit_transform(part[["city"]])  # what the cluster's partitions did
    fixed = nan_strings(part)
    assert fixed["city"].isna().tolist() == [False, True, False]
    assert fixed["city"].dtype == pd.Series(["a", None], dtype="str").dtype  # read_parquet's
    assert imputer.fit_transform(fixed[["city"]]).ravel().tolist() == ["a", "a", "b"]
    assert fixed["amount"].equals(part["amount"])  # other columns untouched
    plain = part.assign(city=["a", "c", "b"]).astype({"city": "str"})
    assert nan_strings(plain) is plain  # nothing to convert: the same frame
