"""Scale-out on Ray: evaluate many candidates (measure or train), one task each.

Ray is an optional extra (``pip install "archgen[distributed]"``). ``address``
names a running cluster (``"ray://host:10001"`` or ``"host:6379"``); None starts
a local one with ``workers`` CPUs for the duration of the call (shut down
again however the call ends, Ctrl-C included). Results come back in the order
of the inputs, gathered with a progress bar as tasks finish (and handed to an
``on_result`` callback as each one does), and equal the serial path's for the
same seeds.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from .errors import ArchGenError


class DistributedError(ArchGenError, RuntimeError):
    """Ray is missing, or the cluster cannot be reached."""


def _ray():
    try:
        import ray
    except ImportError:
        raise DistributedError(
            "Ray is not installed: install the optional extra with `pip install \"archgen[distributed]\"` "
            "(or `pip install ray`), or run without --ray"
        ) from None
    return ray


def _check_reachable(address: str, timeout: float = 3.0) -> None:
    """Fail fast (Ray itself retries for minutes) when ``host:port`` does not answer."""
    import socket

    if address == "auto":
        return
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not port.isdigit():
        raise DistributedError(f"Ray address {address!r} is not of the form host:port or ray://host:port")
    try:
        socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout).close()
    except OSError as exc:
        raise DistributedError(f"the Ray cluster at {address!r} does not answer ({exc}); start it with "
                               "`ray start --head` or run without an address for a local one") from None


def run_on_ray(fn: Callable[..., Any], items: Sequence, *, address: str | None = None, workers: int = 2,
               progress: bool = True, description: str = "evaluating", cpus_per_task: int = 1,
               on_result: Callable[[int, Any], None] | None = None) -> list:
    """``[fn(item) for item in items]``, each call a Ray task of ``cpus_per_task`` CPUs.

    ``on_result(i, result)`` is called in this process as each task finishes (in
    the order they finish), so a caller can keep results (e.g. commit them to a
    cache) before the last one is in. If anything interrupts the gathering --
    Ctrl-C, or an error from ``on_result`` or a task -- a local cluster started
    here is shut down (its ``ray::`` worker processes and tasks end with it), the
    pending tasks on any other cluster are cancelled, and the exception
    propagates unchanged.
    """
    from tqdm.auto import tqdm

    ray = _ray()
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a positive int, got {workers!r}")
    started_here = not ray.is_initialized()
    pending: list = []
    try:
        if started_here:
            if address is not None:
                _check_reachable(address)
            try:
                if address is None:
                    ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False, configure_logging=False)
                else:
                    ray.init(address=address, log_to_driver=False, configure_logging=False)
            except (ConnectionError, TimeoutError, RuntimeError, ValueError) as exc:
                raise DistributedError(f"cannot reach a Ray cluster at {address!r}: {exc}") from None
        task = ray.remote(num_cpus=cpus_per_task)(fn)
        refs = [task.remote(item) for item in items]
        index = {ref: i for i, ref in enumerate(refs)}
        results: list = [None] * len(refs)
        pending = list(refs)
        with tqdm(total=len(refs), desc=f"{description} on Ray", unit="task", disable=not progress) as bar:
            while pending:
                done, pending = ray.wait(pending, num_returns=1)
                for ref in done:
                    i = index[ref]
                    results[i] = ray.get(ref)
                    if on_result is not None:
                        on_result(i, results[i])
                    bar.update(1)
        return results
    except BaseException:
        if not (started_here and address is None):  # a local cluster goes away with its tasks at shutdown
            _cancel(ray, pending)
        raise
    finally:
        if started_here:
            ray.shutdown()  # also after a failed or interrupted ray.init: it stops what was started


def _cancel(ray, refs: list) -> None:
    """Stop tasks still queued or running on a cluster that outlives this call (best
    effort). Not forced: ``force=True`` racing a task that is finishing aborted the
    driver inside Ray (``task_manager.cc: An unexpected system state``) where a
    Ctrl-C should end in one line."""
    for ref in refs:
        try:
            ray.cancel(ref)
        except Exception:  # noqa: BLE001 -- an already finished or unknown task
            pass
