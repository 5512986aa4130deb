"""The one rule for layering configuration values: later layers win key by key, and sparsity
settings merge within their section (a preset's `sparsity: {method: rigl}` under a flag's
`update_interval: 300` keeps the method). A layer that makes the run dense (`sparsity: dense`, a
sweep's dense baseline) drops the levels of the layers below it: a dense run has none. Levels given
with no method anywhere stay, and validation refuses them."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from sparserl.config.coerce import fold_sparsity
from sparserl.config.sparsity import LEVELS, NetworkSparsity

SPARSITY_KEYS = frozenset(f.name for f in fields(NetworkSparsity))
LEVEL_KEYS = frozenset(f"{network}_sparsity" for network in LEVELS)


def merged(*layers: dict[str, Any]) -> dict[str, Any]:
    """The layers (plain mappings of config keys) merged in order, sparsity keys in one section."""
    out: dict[str, Any] = {}
    for layer in layers:
        layer = fold_sparsity(layer, SPARSITY_KEYS)
        below = dict(out.get("sparsity", {}))
        if layer.get("sparsity", {}).get("method") == "dense":
            below = {k: v for k, v in below.items() if k not in LEVEL_KEYS}
        section = {**below, **layer.get("sparsity", {})}
        out.update(layer)
        if section:
            out["sparsity"] = section
    return out
