"""Start a server and wait until it answers: the one helper the benchmarks (bench/serving.py,
bench/abuse.py) and the integration tests (tests/integration/servers.py) share.

It lives here, not under tests/, because the benchmarks run as plain scripts (`python
bench/serving.py`: only bench/ is on sys.path, and the project never edits sys.path), while
pytest already puts the repository root on sys.path, so the tests import it as
``bench.live``. Standard library only.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path


class NotReady(RuntimeError):
    """The server exited, or did not answer as expected in time."""


def free_port() -> int:
    """A loopback port nobody listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def launch(
    cmd: list[str],
    *,
    env: Mapping[str, str],
    cwd: Path | None = None,
    output: Path | None = None,
) -> subprocess.Popen[bytes]:
    """The server in its own process group (so :func:`stop` can reach its workers), stdout and
    stderr to ``output`` (never a pipe nobody reads, which blocks the server once full) or
    discarded."""
    with open(output, "wb") if output else open(os.devnull, "wb") as out:
        return subprocess.Popen(
            cmd,
            cwd=cwd,
            env=dict(env),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _status(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as err:  # 4xx / 5xx: an answer all the same
        return int(err.code)
    except (OSError, ValueError):  # refused, reset, timed out: not up yet
        return None


def wait_until_ready(
    url: str,
    proc: subprocess.Popen[bytes],
    *,
    path: str = "/readyz",
    status: int = 200,
    timeout_s: float = 60.0,
    log: Callable[[], str] = lambda: "",
) -> None:
    """Poll ``url + path`` until it answers ``status``; NotReady (with the end of ``log()``)
    as soon as the process exits, or after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if _status(url + path) == status:
            return
        if proc.poll() is not None:
            raise NotReady(f"{proc.args[0]} exited with {proc.returncode}: {log()[-2000:]}")
        time.sleep(0.25)
    raise NotReady(f"{url}{path} not {status} after {timeout_s:g} s: {log()[-2000:]}")


def stop(proc: subprocess.Popen[bytes], *, group: bool = True, timeout_s: float = 30.0) -> None:
    """SIGTERM (to the whole process group, or the server process alone), then SIGKILL."""
    if proc.poll() is None:
        if group:
            os.killpg(proc.pid, signal.SIGTERM)
        else:
            proc.terminate()
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@contextmanager
def running(
    cmd: list[str],
    *,
    port: int,
    env: Mapping[str, str],
    path: str = "/readyz",
    timeout_s: float = 120.0,
) -> Iterator[str]:
    """Start ``cmd`` (listening on ``port`` of loopback), wait until ``path`` answers 200,
    yield its URL, stop it when the block ends."""
    proc = launch(cmd, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(url, proc, path=path, timeout_s=timeout_s)
        yield url
    finally:
        stop(proc)
