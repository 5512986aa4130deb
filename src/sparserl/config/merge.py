"""The one rule for layering configuration values: later layers win key by key, and sparsity
settings merge within their section (a preset's `sparsity: {method: rigl}` under a flag's
`update_interval: 300` keeps the method)."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from sparserl.config.coerce import fold_sparsity
from sparserl.config.sparsity import NetworkSparsity

SPARSITY_KEYS = frozenset(f.name for f in fields(NetworkSparsity))


def merged(*layers: dict[str, Any]) -> dict[str, Any]:
    """The layers (plain mappings of config keys) merged in order, sparsity keys in one section."""
    out: dict[str, Any] = {}
    for layer in layers:
        layer = fold_sparsity(layer, SPARSITY_KEYS)
        section = {**out.get("sparsity", {}), **layer.get("sparsity", {})}
        out.update(layer)
        if section:
            out["sparsity"] = section
    return out
