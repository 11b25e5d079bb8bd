"""The device mesh's axis names and the constraint that splits one lane's envs over
devices. `vecpg.training.execute` builds the (runs, envs) mesh; the trainer and the
minibatch loop call `split_envs`, a no-op unless the set mesh has an "envs" axis of more
than one device."""

from __future__ import annotations

from typing import Any

import jax

RUNS, ENVS = "runs", "envs"  # the mesh axes: lanes, and envs within a lane


def env_shards() -> int:
    """Size of the set mesh's "envs" axis (devices sharing one lane's envs); 1 without."""
    mesh = jax.sharding.get_abstract_mesh()
    return 1 if mesh.empty or ENVS not in mesh.axis_names else int(mesh.shape[ENVS])


def split_envs(tree: Any, axis: int) -> Any:
    """Data parallelism inside a lane: one lane's arrays with their env axis at `axis`
    constrained to the mesh's "envs" axis, so each device steps its share of the envs;
    XLA (GSPMD) reduces statistics across them, and `vecpg.algos.base.mean_grad`
    averages the gradients. Unchanged without an "envs" axis of more than one device.

    A size the devices do not divide is still correct (GSPMD pads the last share), only
    uneven; the planner (`vecpg.training.execute.env_devices_for`) picks rows that divide
    num_envs and the minibatch, and `mean_grad` never reshapes a size they do not."""
    return _constrained(tree, jax.sharding.PartitionSpec(*([None] * axis), ENVS))


def whole_on_each(tree: Any) -> Any:
    """One lane's arrays held whole by every device of its "envs" row (a no-op without an
    "envs" axis of more than one device): work on them runs on each device, without
    collectives, where GSPMD would otherwise propagate a split from later uses."""
    return _constrained(tree, jax.sharding.PartitionSpec())


def _constrained(tree: Any, spec: jax.sharding.PartitionSpec) -> Any:
    """`tree` constrained to `spec` when the set mesh splits lanes over devices."""
    if env_shards() <= 1:
        return tree
    return jax.tree.map(lambda x: jax.lax.with_sharding_constraint(x, spec), tree)
