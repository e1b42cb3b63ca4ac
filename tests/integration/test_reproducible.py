"""Stage outputs do not depend on the machine (issue 22, finding 3).

The data, features and train stages run once as numpy dispatches on this CPU and once with
every instruction set numpy dispatches to above its baseline turned off
(``NPY_DISABLE_CPU_FEATURES``), glibc's FMA variants off and one OpenMP/BLAS thread: what a
machine without AVX-512, AVX2 or FMA, and with another core count, computes. The outputs must
be the same bytes. On a CPU with AVX-512 the feature files differed (numpy's SVML ``log1p``
against the C library's: one ulp on ~5 % of the values) until the feature function stopped
using numpy's dispatched transcendental functions, and the model file recorded the OpenMP
thread count. On a CPU with nothing above numpy's baseline the first cause cannot show.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.integration.servers import MLOPS
from tests.repo import DEMO_CONTRACT, DEMO_PARAMS, TINY, env, merge

pytestmark = pytest.mark.integration

OUTPUTS = [
    "data/split/train.parquet",
    "data/split/test.parquet",
    "data/features/train.parquet",
    "data/features/test.parquet",
]


def _dispatched_features() -> str:
    """The instruction sets numpy dispatches to on this CPU, above its compiled baseline."""
    from numpy._core._multiarray_umath import __cpu_dispatch__, __cpu_features__

    return " ".join(f for f in __cpu_dispatch__ if __cpu_features__.get(f))


def _run_stages(root: Path, extra_env: dict[str, str], stages: list[str]) -> dict[str, str]:
    root.mkdir()
    shutil.copy(DEMO_CONTRACT, root / "contract.yaml")
    raw = merge(yaml.safe_load(DEMO_PARAMS.read_text()), TINY)
    raw["data"]["synthetic"]["n_rows"] = 5_000  # ~250 values of each log feature differed
    (root / "params.yaml").write_text(yaml.safe_dump(raw))
    run_env = env() | {"MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}"} | extra_env
    for stage in stages:
        proc = subprocess.run(
            [MLOPS, "stage", stage], cwd=root, env=run_env, capture_output=True, text=True
        )
        assert proc.returncode == 0, proc.stderr
    names = OUTPUTS + (["models/model.skops"] if "train" in stages else [])
    return {name: hashlib.md5((root / name).read_bytes()).hexdigest() for name in names}


def test_stage_outputs_do_not_depend_on_simd_dispatch_or_threads(tmp_path: Path) -> None:
    stages = ["data", "features", "train"]
    native = _run_stages(tmp_path / "native", {}, stages)
    baseline = _run_stages(
        tmp_path / "baseline",
        {
            "NPY_DISABLE_CPU_FEATURES": _dispatched_features(),
            # the C library's libm without its FMA/AVX2 variants (glibc >= 2.33)
            "GLIBC_TUNABLES": "glibc.cpu.hwcaps=-AVX2,-FMA,-AVX512F",
            "OMP_NUM_THREADS": "1",
            "OPENBLAS_NUM_THREADS": "1",
        },
        stages,
    )
    assert baseline == native
