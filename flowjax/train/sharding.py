"""Moved to `flowjax.parallel` (the mesh and layouts are shared by models, metrics and the
trainer); this module re-exports its names for one release."""

from flowjax.parallel import (  # noqa: F401
    BATCH_AXES,
    MESH_AXES,
    batch_sharding,
    data_parallel_size,
    global_batch,
    leaf_partition_spec,
    make_mesh,
    mesh_axis_sizes,
    path_string,
    replicated,
    state_shardings,
)
