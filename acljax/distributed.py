"""Data parallelism with JAX's own runtime: a 1-D ``data`` mesh, the meta-batch split over it, the
parameters and optimiser state replicated. Multi-host runs call ``jax.distributed.initialize()``
first; each process then samples only its own rows of the global batch."""

from __future__ import annotations

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

DATA = "data"


def make_mesh(num_devices: int | None = None) -> Mesh:
    """A ``data`` mesh over the first ``num_devices`` devices (all of them, on every host, by default)."""
    devices = jax.devices()
    n = len(devices) if num_devices is None else num_devices
    if not isinstance(n, int) or not 1 <= n <= len(devices):
        raise ValueError(f"num_devices must be between 1 and the {len(devices)} available devices, got {num_devices!r}")
    if n % jax.process_count():
        raise ValueError(f"num_devices={n} must be a multiple of the number of processes ({jax.process_count()})")
    return Mesh(np.asarray(devices[:n]), (DATA,))


def local_rows(batch_size: int, mesh: Mesh) -> slice:
    """The rows of the global batch this process samples and feeds."""
    devices = mesh.devices.size
    if batch_size % devices:
        raise ValueError(f"batch_size={batch_size} must be divisible by the number of devices ({devices})")
    per_process = batch_size // jax.process_count()
    start = jax.process_index() * per_process
    return slice(start, start + per_process)


def shard_batch(mesh: Mesh, local_batch, axis: int = 0):
    """This process's rows (along ``axis``) -> global arrays split over the ``data`` mesh axis there."""
    sharding = NamedSharding(mesh, P(*([None] * axis), DATA))
    return jax.tree.map(lambda x: jax.make_array_from_process_local_data(sharding, np.asarray(x)), local_batch)


def replicate(mesh: Mesh, tree):
    """Put every leaf of ``tree`` on every device of ``mesh``."""
    return jax.device_put(tree, NamedSharding(mesh, P()))
