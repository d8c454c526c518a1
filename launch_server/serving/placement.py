"""Can the cluster fit one replica? Compares what a replica asks for with what alive nodes have
in total (could it ever fit) and free now (can it start now), so an endpoint no node can fit fails
fast with the missing resource named instead of waiting forever."""

from __future__ import annotations

from typing import Any


def replica_demand(ray_actor_options: dict[str, Any]) -> dict[str, float]:
    demand = {"CPU": float(ray_actor_options.get("num_cpus", 0) or 0)}
    if ray_actor_options.get("memory"):
        demand["memory"] = float(ray_actor_options["memory"])
    if ray_actor_options.get("num_gpus"):
        demand["GPU"] = float(ray_actor_options["num_gpus"])
    if ray_actor_options.get("accelerator_type"):
        demand[f"accelerator_type:{ray_actor_options['accelerator_type']}"] = 0.001
    return {k: v for k, v in demand.items() if v > 0}


def missing_on_best_node(demand: dict[str, float], nodes: list[dict[str, float]]) -> dict[str, float] | None:
    """None when some node has everything; otherwise the shortfall on the node that comes closest."""
    best: dict[str, float] | None = None
    for resources in nodes:
        short = {k: v - resources.get(k, 0.0) for k, v in demand.items() if resources.get(k, 0.0) + 1e-9 < v}
        if not short:
            return None
        if best is None or len(short) < len(best):
            best = short
    return best if best is not None else dict(demand)


def describe(resources: dict[str, float]) -> str:
    parts = []
    for key, value in sorted(resources.items()):
        if key == "memory":
            parts.append(f"memory={value / 2**30:.2f}GiB")
        elif key.startswith("accelerator_type:"):
            parts.append(key)
        else:
            parts.append(f"{key}={value:g}")
    return ", ".join(parts)


def cluster_nodes(available: bool) -> list[dict[str, float]]:
    """Per-node total (or currently free) resources of alive nodes."""
    import ray
    from ray._private import state  # no public per-node view of free resources in Ray 2.60

    if not available:
        return [dict(n["Resources"]) for n in ray.nodes() if n.get("Alive")]
    return [dict(v) for v in state.available_resources_per_node().values()]
