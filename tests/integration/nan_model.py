"""A model step that returns NaN for some rows (tests of the service's output check): importable
by a `bentoml serve` started with the repository root on PYTHONPATH."""

from __future__ import annotations

from typing import Any

import numpy as np

POISON_AMOUNT = 12_345.0  # rows with this amount get NaN probabilities


class NonFinite:
    """Wraps a fitted model step; rows whose ``amount`` is POISON_AMOUNT come out NaN."""

    def __init__(self, core: Any) -> None:
        self.core = core
        self.classes_ = core.classes_

    def predict_proba(self, features: Any) -> np.ndarray:
        proba = np.array(self.core.predict_proba(features), dtype="float64")
        proba[features["amount"].to_numpy() == POISON_AMOUNT] = np.nan
        return proba
