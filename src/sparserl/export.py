"""Export a trained actor as a deployable policy file (format: sparserl.policy_file).

    sparserl export RUN_DIR --out policy.safetensors [--storage auto|dense|csr|nm] [--plugins FILE]

Only the deterministic part of the actor is kept (for SAC the mean half of the output layer), each
weight in its smallest storage (dense, CSR or packed N:M), with the observation statistics and a
header describing architecture, sizes and origin. Every run also writes its policy this way next to
each checkpoint, so `export` re-encodes the run's latest policy (lossless: stored values are the
trained float32 weights).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from sparserl import policy_file
from sparserl.errors import PolicyError


def _canonical(module: nn.Module) -> torch.Tensor:
    """A linear layer's weight as (out, in): an ensemble layer's only member, or a Linear's own."""
    return module.weight_oi[0] if hasattr(module, "weight_oi") else module.weight


def actor_tensors(actor: nn.Module) -> tuple[dict, dict[str, torch.Tensor], int, int]:
    """(header architecture, canonical dense tensors, obs_dim, act_dim) of a sparserl actor, walking
    the layers its architecture description names (sparserl.architecture)."""
    arch, body = actor.architecture, actor.net
    act_dim = actor.act_dim
    header_arch = {"network": arch.body, "hidden": list(arch.hidden), "width": int(arch.width),
                   "blocks": int(arch.blocks), "obs_norm": body.obs_norm is not None}
    dense: dict[str, torch.Tensor] = {}
    if body.obs_norm is not None:
        dense["obs_norm.mean"], dense["obs_norm.var"] = body.obs_norm.mean, body.obs_norm.var
    for name, _, _ in arch.linears():
        if name.startswith("head.") and name != "head.0":
            continue  # a policy acts on the mean head alone (SimBa's log-std head is for training)
        layer = body.net.get_submodule(name)
        stored = "head" if name == "head.0" else name  # the file's body has one head
        dense[f"{stored}.weight"], dense[f"{stored}.bias"] = _canonical(layer), layer.bias.reshape(-1)
    for name, _ in arch.norms():
        norm = body.net.get_submodule(name)
        dense[f"{name}.weight"], dense[f"{name}.bias"] = norm.weight.reshape(-1), norm.bias.reshape(-1)
    last = "head" if arch.heads > 1 else arch.linears()[-1][0]  # the action means only (a fused head's first rows)
    dense[f"{last}.weight"], dense[f"{last}.bias"] = dense[f"{last}.weight"][:act_dim], dense[f"{last}.bias"][:act_dim]
    return header_arch, {k: v.detach().float() for k, v in dense.items()}, arch.in_dim, act_dim


def pixel_policy_tensors(policy: nn.Module) -> tuple[dict, dict[str, torch.Tensor], int, int]:
    """`actor_tensors` of a pixel policy (sparserl.algos.drqv2.PixelPolicy): its actor head's, with the
    encoder's convolutions (as (out, in * k * k) matrices) and the actor's trunk before them."""
    arch, dense, _, act_dim = actor_tensors(policy.actor.head)
    convs = [m for m in policy.encoder.modules() if isinstance(m, nn.Conv2d)]
    trunk = policy.actor.trunk
    arch["encoder"] = {"channels": convs[0].in_channels, "size": policy.encoder.size,
                       "filters": convs[0].out_channels, "kernel": convs[0].kernel_size[0],
                       "strides": [conv.stride[0] for conv in convs], "trunk": trunk.linear.out_features}
    for i, conv in enumerate(convs):
        dense[f"encoder.{i}.weight"], dense[f"encoder.{i}.bias"] = conv.weight.flatten(1), conv.bias
    dense["trunk.weight"], dense["trunk.bias"] = trunk.linear.weight, trunk.linear.bias
    dense["trunk.norm.weight"], dense["trunk.norm.bias"] = trunk.norm.weight, trunk.norm.bias
    obs_dim = convs[0].in_channels * policy.encoder.size ** 2
    return arch, {k: v.detach().float() for k, v in dense.items()}, obs_dim, act_dim


def check_output_path(out: Path) -> None:
    """Refuse an output path that is a directory or lies in a folder that does not exist or is read-only."""
    if out.is_dir():
        raise PolicyError(f"--out {out} is a directory; give a file name, e.g. {out / 'policy.safetensors'}")
    folder = out.parent
    if not folder.is_dir():
        raise PolicyError(f"--out {out}: the folder {folder} does not exist; create it first")
    if not os.access(folder, os.W_OK):
        raise PolicyError(f"--out {out}: the folder {folder} is not writable by this user")


def export_actor(actor: nn.Module, path: str | Path, source: dict, storage: str = "auto",
                 nm: tuple[int, int] | None = None, writer=None, spaces: dict | None = None) -> dict:
    """Write `actor` as a policy file at `path`; returns the header written.

    `source` describes the run (env, algo, step, ...); `nm` is the run's N:M pattern, if any, so
    N:M layers can be stored packed; `spaces` the environment's observation and action spaces."""
    pixels = hasattr(actor, "encoder")
    arch, dense, obs_dim, act_dim = (pixel_policy_tensors if pixels else actor_tensors)(actor)
    tensors, layers = policy_file.encode(arch, dense, storage, nm)
    weights = sum(e["shape"][0] * e["shape"][1] for e in layers.values())
    extra: dict = {"sparsity": {"density": sum(e["kept"] for e in layers.values()) / weights, "weights": weights}}
    if arch["obs_norm"]:  # for readers of the header; the loader uses the float32 tensors
        extra["observation_normalisation"] = {"mean": dense["obs_norm.mean"].tolist(),
                                              "var": dense["obs_norm.var"].tolist()}
    if pixels:
        encoder = arch["encoder"]
        extra["obs_shape"] = [encoder["channels"], encoder["size"], encoder["size"]]
    if spaces:
        extra["spaces"] = spaces
    header = {"kind": actor.kind,
              "obs_dim": obs_dim, "act_dim": act_dim, "architecture": arch, "layers": layers, **extra,
              "actions": "in [-1, 1]: rescale to the environment's bounds (sparserl.make_env does)",
              "source": source}
    policy_file.write(path, header, tensors, writer)
    return header


def export_run(run_dir: str | Path, out: str | Path, storage: str = "auto") -> dict:
    """Re-encode a run's latest saved policy into `out` with `storage`; returns the header written.
    A run directory's recorded plugins are imported first (they may register its body)."""
    from sparserl.registry import load_plugins
    from sparserl.runs.files import CONFIG_FILE, read_run_config

    if (Path(run_dir) / CONFIG_FILE).is_file():
        load_plugins(read_run_config(Path(run_dir)).plugins)
    header, tensors = policy_file.read(run_dir)
    if Path(out).resolve() == (Path(run_dir) / policy_file.POLICY_FILE).resolve():
        raise PolicyError(f"--out {out} is the run's own policy file; choose another path")
    check_output_path(Path(out))
    arch = header["architecture"]
    dense = policy_file.decode(arch, header["layers"], tensors)
    nm = next((e["nm"] for e in header["layers"].values() if "nm" in e), header["source"].get("nm"))
    tensors, layers = policy_file.encode(arch, dense, storage, tuple(nm) if nm else None)
    new = {**header, "layers": layers}
    new.pop("format", None)
    policy_file.write(out, new, tensors)
    return new
