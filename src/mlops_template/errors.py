"""The project's exceptions: catch ``ConfigError`` for bad params, ``DataError`` for bad data.

The CLI turns any :class:`MlopsError` into one readable line and the exit code below, so a
caller (a DVC stage, a workflow, a shell script) can tell the kinds of failure apart.
"""

from __future__ import annotations


class MlopsError(Exception):
    """Base class for every error the project raises on purpose."""

    exit_code = 1


class ConfigError(MlopsError):
    """params.yaml or the data contract file is invalid (names the key)."""

    exit_code = 2


class DataError(MlopsError):
    """Input data cannot be read or does not satisfy the data contract."""

    exit_code = 3


class ContractViolation(DataError):
    """Data was read but breaks the data contract; ``failures`` holds one row per failure."""

    def __init__(self, message: str, failures: object | None = None) -> None:
        super().__init__(message)
        self.failures = failures


class TrackingError(MlopsError):
    """The MLflow tracking store cannot be reached or written."""

    exit_code = 4


class GateFailed(MlopsError):
    """A declared metric gate failed: the model must not be packaged."""

    exit_code = 5


class PackageError(MlopsError):
    """The package stage cannot save or build the Bento (missing model, metrics or bentofile)."""

    exit_code = 6


class ModelError(MlopsError):
    """The trained model or its description is missing, corrupt, or not the one train wrote
    (its sha256 differs from models/model.json), or holds a type the loader does not trust:
    nothing in it was run."""

    exit_code = 10


class RetrainNeeded(MlopsError):
    """Monitoring crossed a threshold in params.yaml (drift share, prediction drift or a
    quality drop): the deployed model is stale and should be retrained."""

    exit_code = 7


class BatchContractViolation(ContractViolation):
    """A monitored batch breaks the data contract (reported apart from drift)."""

    exit_code = 8


class RegistryError(TrackingError):
    """The model registry has no such version, or nothing to roll back to."""

    exit_code = 9


class ClusterError(MlopsError):
    """The Dask cluster (dask.address) cannot be reached, or lost its workers mid-run."""

    exit_code = 11
