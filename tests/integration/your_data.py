"""The tables and the check behind test_your_data*.py (two files, so that pytest-xdist's
--dist loadfile runs the halves on two workers: each table is a whole `dvc repro` and
a served model, about a minute).

Data the template has never seen, from `mlops init` to a served prediction with zero edits:
scikit-learn's bundled tables and a generated one with every nasty shape (ISO-string
timestamps, missing values, a boolean with missing values, an integer id, a 10,000-value string
column, a 3-class string target). Each runs the whole `dvc repro` (to a built Bento) in a real
git + DVC repository, then a real `bentoml serve` answers the held-out rows with exactly the
labels (or values) the evaluate stage reported."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn import datasets

from mlops_template.onnx_path import allowed_difference
from tests.integration.servers import records, serve
from tests.repo import env, make_repo, run
from tests.tables import nasty_table


def _bundled(loader: Callable[..., object]) -> Callable[[], pd.DataFrame]:
    return lambda: loader(as_frame=True).frame  # type: ignore[attr-defined]


def _nasty() -> pd.DataFrame:
    table = nasty_table(6_000, iso_strings=True)
    rng = np.random.default_rng(1)
    member = pd.array(rng.random(len(table)) < 0.4, dtype="boolean")
    member[rng.random(len(table)) < 0.1] = pd.NA  # a boolean with missing values
    return table.assign(is_member=member)


TABLES: dict[str, tuple[Callable[[], pd.DataFrame], str, str]] = {
    # name: (table, target, task mlops init must infer)
    "iris": (_bundled(datasets.load_iris), "target", "multiclass"),
    "breast_cancer": (_bundled(datasets.load_breast_cancer), "target", "binary"),
    "wine": (_bundled(datasets.load_wine), "target", "multiclass"),
    "diabetes": (_bundled(datasets.load_diabetes), "target", "regression"),
    "digits": (_bundled(datasets.load_digits), "target", "multiclass"),
    "nasty": (_nasty, "label", "multiclass"),
}
FIRST_HALF = ["iris", "breast_cancer", "diabetes"]  # test_your_data.py; the rest: _more.py


def init_repro_serve(tmp_path: Path, name: str) -> None:
    make, target, task = TABLES[name]
    repo = make_repo(tmp_path / name)
    make().to_csv(repo / f"{name}.csv", index=False)
    run(repo, "mlops", "init", f"{name}.csv", "--target", target, "--force")
    params = (repo / "params.yaml").read_text()
    assert f"task: {task}" in params

    run(repo, "dvc", "repro", timeout=900)
    package = json.loads((repo / "reports/package.json").read_text())
    assert package["bento_tag"], package
    offline = pd.read_parquet(repo / "data/predictions/test.parquet")
    held_out = pd.read_parquet(repo / "data/split/test.parquet").drop(columns=[target])

    with_env = env() | {"BENTOML_HOME": str(repo / ".bentoml")}
    server = serve("mlops_template.serving.service:MlopsService", repo, with_env)
    url = next(server)
    try:
        import requests

        served = []
        for start in range(0, len(held_out), 500):  # serve.max_rows per request
            rows = records(held_out.iloc[start : start + 500])
            resp = requests.post(f"{url}/predict", json={"records": rows}, timeout=120)
            assert resp.status_code == 200, resp.text[:2000]
            served += [r["prediction"] for r in resp.json()]
    finally:
        server.close()
    if task == "regression":
        # onnxruntime's trees return float32: equal within the package stage's tolerance
        atol = allowed_difference(task, offline["prediction"])
        np.testing.assert_allclose(served, offline["prediction"], rtol=0, atol=atol)
    else:
        assert [str(v) for v in served] == offline["prediction"].astype(str).tolist()
