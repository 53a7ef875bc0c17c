"""The Ray backend: one long-lived actor per GPU (or per CPU worker) loads the model once and takes chunks.

Without an address, advlens starts a single-node cluster on this machine that listens on 127.0.0.1 only; with
``--address`` or ``RAY_ADDRESS`` it joins an existing cluster. Workers return rows; the driver writes them, so a
worker lost mid-chunk only costs that chunk (Ray restarts the actor and retries it).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from typing import Any, Optional

import torch

from advlens.evaluation.plan import Chunk
from advlens.evaluation.runner import run_chunk

# Ray binds every daemon of a local cluster to the loopback address only when "clusters" are off, as it does on
# macOS and Windows (ray._private.services.get_node_ip_address); on Linux it would listen on every interface.
LOOPBACK_ONLY = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
IN_FLIGHT_PER_WORKER = 2  # one running, one queued: a worker never waits for the driver


class _Worker:
    def __init__(self, model_name: str, use_gpu: bool, threads: int) -> None:
        from advlens.models import load_model

        torch.set_num_threads(threads)
        device = torch.device("cuda" if use_gpu and torch.cuda.is_available() else "cpu")
        self.model_name = model_name
        self.model = load_model(model_name, device)

    def run(self, chunk: Chunk) -> list[dict[str, Any]]:
        return run_chunk(self.model, self.model_name, chunk)


def _reachable(address: str) -> None:
    """A host:port address must answer before Ray is asked to join it (Ray itself retries for a minute)."""
    if address == "auto" or address.startswith("local"):
        return
    hostport = address.split("://", 1)[-1]
    host, _, port = hostport.rpartition(":")
    try:
        with socket.create_connection((host or hostport, int(port) if port.isdigit() else 6379), timeout=5):
            return
    except (OSError, ValueError):
        raise ValueError(f"No Ray cluster answers at {address}: start one with `ray start --head` or fix --address.") \
            from None


class RayBackend:
    name = "ray"

    def __init__(self, model_name: str, device: torch.device, *, address: Optional[str] = None,
                 workers: Optional[int] = None, threads: int = 1) -> None:
        address = address or os.environ.get("RAY_ADDRESS") or None
        try:
            import ray
            import ray._private.ray_constants as ray_constants
        except ImportError:
            raise ValueError("The Ray backend needs Ray: install advlens with the ray extra (uv sync --extra ray).") \
                from None
        self.ray = ray
        self.started = False
        if not ray.is_initialized():
            if address:
                _reachable(address)
                try:
                    ray.init(address=address, log_to_driver=False)
                except (ConnectionError, RuntimeError) as err:
                    raise ValueError(f"Could not join the Ray cluster at {address}: {str(err).splitlines()[0]}") \
                        from None
            else:  # a private single-node cluster, reachable from this machine only
                before = os.environ.get(LOOPBACK_ONLY), ray_constants.ENABLE_RAY_CLUSTER
                os.environ[LOOPBACK_ONLY], ray_constants.ENABLE_RAY_CLUSTER = "0", False  # the daemons inherit it
                try:
                    ray.init(num_cpus=(workers or os.cpu_count() or 1) * threads, include_dashboard=False,
                             dashboard_host="127.0.0.1", _node_ip_address="127.0.0.1", log_to_driver=False)
                finally:
                    if before[0] is None:
                        os.environ.pop(LOOPBACK_ONLY, None)
                    else:
                        os.environ[LOOPBACK_ONLY] = before[0]
                    ray_constants.ENABLE_RAY_CLUSTER = before[1]
            self.started = True
        resources = ray.cluster_resources()
        use_gpu = device.type == "cuda" and resources.get("GPU", 0) >= 1
        count = workers or int(resources.get("GPU", 0) if use_gpu else max(1, resources.get("CPU", 1) // threads))
        actor = ray.remote(num_gpus=1 if use_gpu else 0, num_cpus=0 if use_gpu else threads,
                           max_restarts=3, max_task_retries=3)(_Worker)
        self.workers: list[Any] = [actor.remote(model_name, use_gpu, threads) for _ in range(max(1, count))]

    def run(self, chunks: list[Chunk]) -> Iterator[list[dict[str, Any]]]:
        ray = self.ray
        queue = list(reversed(chunks))
        running: dict[Any, Any] = {}  # ObjectRef → worker
        for worker in self.workers * IN_FLIGHT_PER_WORKER:
            if queue:
                running[worker.run.remote(queue.pop())] = worker
        while running:
            done, _ = ray.wait(list(running), num_returns=1)
            worker = running.pop(done[0])
            if queue:
                running[worker.run.remote(queue.pop())] = worker
            yield ray.get(done[0])

    def close(self) -> None:
        for worker in self.workers:
            self.ray.kill(worker)
        self.workers = []
        if self.started:
            self.ray.shutdown()
