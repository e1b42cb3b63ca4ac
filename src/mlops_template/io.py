"""Atomic file writes: a reader (a later stage, the service) never sees a half-written file.

Each writer writes to a temporary file in the same folder, then renames it over the target.
Imports nothing heavy (pandas only for type hints): the gate's fast path writes through it.
"""

from __future__ import annotations

import json
import math
import os
import secrets
import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd


@contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``target``; rename it over ``target`` on success only.

    The file ends with the mode a plain ``open(target, "w")`` would leave: a new file gets
    0666 minus the umask (the temporary file is created with that mode, so the kernel applies
    the umask; ``mkstemp``'s 0600 made reports unreadable to a teammate or a CI cache), an
    existing file keeps its mode.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp_path = _create_temporary(target)
    try:
        yield tmp_path
        with suppress(FileNotFoundError):
            os.chmod(tmp_path, stat.S_IMODE(target.stat().st_mode))
        os.replace(tmp_path, target)
    finally:
        tmp_path.unlink(missing_ok=True)


def _create_temporary(target: Path) -> Path:
    for _ in range(100):
        tmp = target.with_name(f".{target.name}.{secrets.token_hex(6)}.tmp")
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except FileExistsError:
            continue
        return tmp
    raise FileExistsError(f"{target.parent}: no free temporary name for {target.name}")


def write_atomic(target: str | Path, write: Callable[[Path], Any]) -> Path:
    with atomic_path(target) as tmp:
        write(tmp)
    return Path(target)


def write_parquet(df: pd.DataFrame, target: str | Path) -> Path:
    return write_atomic(target, lambda p: df.to_parquet(p, index=False))


def write_csv(df: pd.DataFrame, target: str | Path) -> Path:
    return write_atomic(target, lambda p: df.to_csv(p, index=False))


def write_json(obj: Any, target: str | Path) -> Path:
    """Stable JSON (sorted keys, fixed float repr) so identical runs give identical bytes."""
    text = json.dumps(_finite(obj), indent=2, sort_keys=True, default=_to_builtin) + "\n"
    return write_atomic(target, lambda p: p.write_text(text))


def write_text(text: str, target: str | Path) -> Path:
    return write_atomic(target, lambda p: p.write_text(text))


def _finite(value: Any) -> Any:
    """NaN and infinities are not JSON: write them as null."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if hasattr(value, "item") and not hasattr(value, "__len__"):
        return _finite(value.item())
    return value


def _to_builtin(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} as JSON")
