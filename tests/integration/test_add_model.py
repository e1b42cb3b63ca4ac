"""Adding a model is one place: an entry in estimators.ESTIMATORS (with its params section,
builder and search space) and its section in params.yaml. A toy model added that way to a
temporary copy of the project validates, joins tune's space and trains end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.repo import make_repo, run, write_params

pytestmark = pytest.mark.integration

TOY = """

class NearestNeighboursParams(Hyperparameters):
    n_neighbors: int = Field(25, ge=1)


def _nearest_neighbours(task: str, p: dict[str, Any], seed: int) -> Any:
    from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor

    return KNeighborsRegressor(**p) if task == "regression" else KNeighborsClassifier(**p)


ESTIMATORS["nearest_neighbours"] = Estimator(
    NearestNeighboursParams,
    _nearest_neighbours,
    {"n_neighbors": {"low": 5, "high": 50}},
    scale_numeric=True,
    # what a fitted k-NN holds beyond skops' defaults (train names them if one is missing)
    trusted_types=(
        "sklearn.neighbors._kd_tree.KDTree",
        "sklearn.neighbors._ball_tree.BallTree",
        "sklearn.metrics._dist_metrics.EuclideanDistance64",
    ),
)
"""


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A template copy whose estimators.py has one more entry; its own sources are imported."""
    repo = make_repo(tmp_path / "repo")
    registry = repo / "src/mlops_template/estimators.py"
    registry.write_text(registry.read_text() + TOY)
    monkeypatch.setenv("PYTHONPATH", str(repo / "src"))
    return repo


def _python(repo: Path, code: str) -> str:
    return (
        run(repo, "python", "-c", code, check=False).stdout
        + run(repo, "python", "-c", code, check=False).stderr
    )


def test_a_model_added_in_one_place_validates_tunes_and_trains(repo: Path) -> None:
    write_params(repo, {"train": {"model": "nearest_neighbours", "nearest_neighbours": {}}})
    write_params(repo, {"train": {"nearest_neighbours": {"n_neighbors": 0}}})
    bad = run(repo, "mlops", "stage", "data", check=False)  # params are checked before any work
    assert bad.returncode == 2 and "train.nearest_neighbours.n_neighbors" in bad.stderr, bad.stderr

    write_params(repo, {"train": {"nearest_neighbours": {"n_neighbors": 15}}})
    space = "from mlops_template.config import TuneParams; print(TuneParams().space)"
    assert "'nearest_neighbours': {'n_neighbors'" in _python(repo, space)

    run(repo, "dvc", "repro", "train")
    meta = json.loads((repo / "models/model.json").read_text())
    assert meta["model"] == "nearest_neighbours"
    assert meta["hyperparameters"] == {"n_neighbors": 15}
    cv = json.loads((repo / "reports/cv_metrics.json").read_text())
    assert cv["cv_roc_auc_mean"] > 0.6, cv  # better than chance on the demo's fraud label
    steps = (
        "from pathlib import Path; from mlops_template.model import read_pipeline; "
        "print(read_pipeline(Path('models/model.skops')).steps[-1][1])"
    )
    assert "KNeighborsClassifier" in _python(repo, steps)
