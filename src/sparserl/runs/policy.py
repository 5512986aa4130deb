"""The deployable part of a run: the actor alone, as ``policy.safetensors``.

Written atomically next to every checkpoint. Its metadata (algorithm, environment, sizes) is
enough to rebuild the actor, so `load_policy` needs neither the replay buffer nor the optimiser
state of a checkpoint.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save

from sparserl.errors import CheckpointError
from sparserl.nets import POLICY_CLASSES
from sparserl.runs.checkpoint import atomic_write

POLICY_FILE = "policy.safetensors"


def save_policy(path: Path, actor: torch.nn.Module, meta: dict) -> None:
    """Save `actor` (which must carry `init_kwargs`) with `meta` describing the run."""
    meta = {**meta, "policy_class": type(actor).__name__, "policy_kwargs": actor.init_kwargs}
    tensors = {k: v.detach().contiguous() for k, v in actor.state_dict().items()}
    blob = save(tensors, metadata={"sparserl": json.dumps(meta)})
    atomic_write(Path(path), lambda f: f.write(blob))


@dataclass
class Policy:
    """A loaded deterministic policy: `act(obs)` maps one observation to an action in [-1, 1]."""

    module: torch.nn.Module
    meta: dict

    @torch.no_grad()
    def act(self, obs: np.ndarray) -> np.ndarray:
        x = torch.as_tensor(np.asarray(obs, dtype=np.float32))
        single = x.dim() == 1
        action = self.module(x.unsqueeze(0) if single else x)
        return (action[0] if single else action).numpy()

    __call__ = act


def load_policy(path: str | Path) -> Policy:
    """Load the policy of a run directory (or a policy.safetensors file)."""
    path = Path(path)
    if path.is_dir():
        path = path / POLICY_FILE
    if not path.is_file():
        raise CheckpointError(f"no saved policy at {path}: a run writes it with its first checkpoint")
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        meta = json.loads((f.metadata() or {}).get("sparserl", "{}"))
    if not meta:
        raise CheckpointError(f"{path} is not a sparserl policy file (no metadata)")
    cls = POLICY_CLASSES.get(meta.get("policy_class", ""))
    if cls is None:
        raise CheckpointError(f"{path} names an unknown policy class {meta.get('policy_class')!r}")
    kwargs = dict(meta["policy_kwargs"])
    kwargs["hidden"] = tuple(kwargs["hidden"])
    module = cls(**kwargs)
    module.load_state_dict(load_file(str(path)))
    return Policy(module.eval(), meta)
