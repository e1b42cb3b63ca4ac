"""Guards against dependency pins being dropped by accident."""

from __future__ import annotations


def test_evidently_imports_with_the_locked_pandas():
    # evidently 0.7.23 fails to import with pandas 3.1 (a removed pandas internal): keep pandas<3.1
    import pandas as pd
    from evidently import Report
    from evidently.presets import DataDriftPreset

    assert tuple(int(p) for p in pd.__version__.split(".")[:2]) < (3, 1)
    assert Report([DataDriftPreset()]) is not None
