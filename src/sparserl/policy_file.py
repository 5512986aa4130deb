"""Policy files: a safetensors file of an actor's tensors and a JSON header, written by
sparserl.export and read by sparserl.deploy. This module imports nothing of sparserl's training code.

File format 1: safetensors tensors plus one metadata entry ``sparserl_policy`` (JSON):

    {"format": 1, "kind": one of KINDS, "obs_dim", "act_dim",
     "architecture": {"network": "mlp" | "simba" | "bronet", "hidden", "width", "blocks", "obs_norm",
                      "encoder"?: {"channels", "size", "filters", "kernel", "strides", "trunk"}},
     "obs_shape"?: [channels, size, size]                                      (pixel policies)
     "layers": {name: {"storage", "shape": [out, in], "kept", "nm"?}},
     "sparsity": {"density", "weights"}, "observation_normalisation": {"mean", "var"} (a copy),
     "spaces": {"observation": {"shape"}, "action": {"shape", "low", "high"}},   (runs' exports)
     "source": {env, algo, step, action_repeat, sparsity, ...}}

Layers and norms are named as sparserl.architecture names them (``layers.{i}`` for an MLP;
``embed``, ``blocks.{i}.fc1``/``fc2``, ``head`` and norms ``blocks.{i}.norm1``/``norm2``, ``norm`` for
SimBa and BroNet); observation statistics ``obs_norm.mean``/``var``. A pixel policy (DrQ-v2) has an
encoder before the body: convolutions ``encoder.{i}`` (weights stored as (out, in * k * k) matrices)
and the trunk's linear layer ``trunk`` with its LayerNorm ``trunk.norm``. Each linear weight W (out, in)
is stored in the smallest registered storage of sparserl.storage (dense, CSR or packed N:M), with
``{name}.bias`` float32 (out) beside it. A 1:8 layer costs 5/32 of its dense bytes.

``checksum`` is "sha256:" and the hex digest of the header (without the checksum, as sorted
JSON) and of every tensor's name, dtype, shape and bytes in name order: a file damaged after it was
written is refused, naming what is wrong. Files written before checksums existed load with a
warning. Non-finite weights are refused when a file is written and when it is read.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path

import torch

from sparserl.architecture import BODIES, Architecture
from sparserl.errors import PolicyError, PolicyWarning
from sparserl.storage import STORAGES, decode_dense, encode_layer

FORMAT = 1
KINDS = {"deterministic": "tanh", "gaussian": "tanh", "clipped-gaussian": "clip", "categorical": "argmax"}
"""Each actor kind and what turns its head's output into the action: tanh (TD3, DDPG; SAC's mean),
clip to [-1, 1] (Stream AC's Gaussian mean) or argmax (a discrete action, act_dim being the
number of actions)."""
META_KEY = "sparserl_policy"
POLICY_FILE = "policy.safetensors"
def storage_choices() -> tuple[str, ...]:
    """What `encode` takes: auto (the smallest per layer) or a registered storage."""
    return ("auto", *STORAGES.names())


# --- architecture (sparserl.architecture describes every body once) -----------------------------
def architecture(arch: dict, obs_dim: int = 0, act_dim: int = 0) -> Architecture:
    """The body a header's `architecture` entry describes (sizes matter only for running it)."""
    if arch.get("network") not in BODIES:
        raise PolicyError(f"the policy's body is not registered here ({BODIES.unknown(arch.get('network'))}); "
                          f"import the plugin that registers it before loading the policy")
    return Architecture(arch["network"], obs_dim, act_dim, tuple(arch["hidden"]), int(arch["width"]),
                        int(arch["blocks"]))


def encoder_names(arch: dict) -> list[str]:
    """A pixel policy's convolutions and trunk (nothing for a policy on state vectors)."""
    encoder = arch.get("encoder")
    return [f"encoder.{i}" for i in range(len(encoder["strides"]))] + ["trunk"] if encoder else []


def linear_names(arch: dict) -> list[str]:
    """The weight layers of an exported actor, input first (a pixel policy's encoder first)."""
    return encoder_names(arch) + [name for name, _, _ in architecture(arch).linears()]


def norm_names(arch: dict) -> list[str]:
    return (["trunk.norm"] if arch.get("encoder") else []) + [name for name, _ in architecture(arch).norms()]


def input_width(header: dict) -> int:
    """The width of the first stored layer's input: the observation size, or for a pixel policy
    one convolution window (channels * k * k)."""
    encoder = header["architecture"].get("encoder")
    return int(header["obs_dim"]) if not encoder else int(encoder["channels"]) * int(encoder["kernel"]) ** 2


def encode(arch: dict, dense: dict[str, torch.Tensor], storage: str = "auto",
           nm: tuple[int, int] | None = None) -> tuple[dict, dict]:
    """(tensors, layer entries) of an actor given as canonical dense tensors (see the module doc)."""
    if storage not in storage_choices():
        raise PolicyError(f"unknown storage {storage!r}; use one of {', '.join(storage_choices())}")
    tensors, layers = {}, {}
    for name in linear_names(arch):
        stored, layers[name] = encode_layer(name, dense[f"{name}.weight"], storage, nm)
        tensors.update(stored)
    for key in _plain_keys(arch):
        tensors[key] = dense[key].detach().float().contiguous()
    return tensors, layers


def decode(arch: dict, layers: dict, tensors: dict) -> dict[str, torch.Tensor]:
    """The canonical dense tensors of a stored actor: the inverse of `encode` (lossless)."""
    dense = {key: tensors[key] for key in _plain_keys(arch)}
    for name in linear_names(arch):
        dense[f"{name}.weight"] = decode_dense(name, layers[name], tensors)
    return dense


def _plain_keys(arch: dict) -> list[str]:
    """Tensors stored as they are: biases, norm parameters, observation statistics."""
    keys = [f"{name}.bias" for name in linear_names(arch)]
    keys += [f"{name}.{part}" for name in norm_names(arch) for part in ("weight", "bias")]
    return keys + (["obs_norm.mean", "obs_norm.var"] if arch["obs_norm"] else [])


def checksum(header: dict, tensors: dict[str, torch.Tensor]) -> str:
    """The file's checksum (see the module doc): of the header without its checksum and every tensor."""
    digest = hashlib.sha256(json.dumps({k: v for k, v in header.items() if k != "checksum"}, sort_keys=True,
                                       separators=(",", ":")).encode())
    for name in sorted(tensors):
        tensor = tensors[name].detach().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{list(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return "sha256:" + digest.hexdigest()


def non_finite(tensors: dict[str, torch.Tensor]) -> list[str]:
    """The floating-point tensors holding a NaN or an infinity."""
    return [name for name, t in tensors.items() if t.is_floating_point() and not bool(torch.isfinite(t).all())]


def write(path: str | Path, header: dict, tensors: dict[str, torch.Tensor], writer=None) -> None:
    """Write a policy file (`writer(path, data)`, default a plain write; training passes an atomic one).
    Non-finite weights are refused before anything is written."""
    from safetensors.torch import save

    bad = non_finite(tensors)
    if bad:
        raise PolicyError(f"the policy holds NaN or infinite values in {', '.join(bad[:5])}; nothing was written "
                          f"to {path}")
    tensors = {k: v.contiguous() for k, v in tensors.items()}
    header = {"format": FORMAT, **{k: v for k, v in header.items() if k not in ("format", "checksum")}}
    header["checksum"] = checksum(header, tensors)
    blob = save(tensors, metadata={META_KEY: json.dumps(header)})
    if writer is None:
        Path(path).write_bytes(blob)
    else:
        writer(Path(path), blob)


# --- loading -----------------------------------------------------------------------------------
def read(path: str | Path) -> tuple[dict, dict[str, torch.Tensor]]:
    """(header, tensors) of a policy file, with clear errors for anything that is not one."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if path.is_dir():
        path = path / POLICY_FILE
    if not path.is_file():
        raise PolicyError(f"no policy file at {path} (a run writes policy.safetensors with its first checkpoint)")
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open is not a dict)
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise PolicyError(f"{path} is not a readable policy file (corrupt or truncated?): {e}") from None
    if META_KEY not in metadata:
        old = "sparserl" in metadata
        raise PolicyError(f"{path} is not a sparserl policy file" + (
            " of this version: it was written by an older sparserl; export it again with "
            "`sparserl export RUN_DIR` from a run of this version" if old else " (no sparserl_policy header)"))
    try:
        header = json.loads(metadata[META_KEY])
    except json.JSONDecodeError as e:
        raise PolicyError(f"{path}: the policy header is not valid JSON ({e})") from None
    version = header.get("format")
    if version != FORMAT:
        raise PolicyError(f"{path} has policy format {version!r}; this sparserl reads format {FORMAT} "
                          f"(export the run again with this version)")
    _check(path, header, tensors)
    _check_integrity(path, header, tensors)
    return header, tensors


def _check_integrity(path: Path, header: dict, tensors: dict) -> None:
    """The checksum matches (a file without one loads with a PolicyWarning) and every weight is finite."""
    if "checksum" not in header:
        warnings.warn(f"{path} has no checksum (written by an older sparserl), so damage to it cannot be "
                      f"detected; export the run again to add one", PolicyWarning, stacklevel=3)
    elif header["checksum"] != checksum(header, tensors):
        raise PolicyError(f"{path} is damaged: its contents do not match the checksum written with it "
                          f"(changed or corrupted after it was written)")
    bad = non_finite(tensors)
    if bad:
        raise PolicyError(f"{path} holds NaN or infinite values in {', '.join(bad[:5])} (a diverged run?)")


def _check(path: Path, header: dict, tensors: dict) -> None:
    try:
        arch, layers = header["architecture"], header["layers"]
        needed = _plain_keys(arch)
        for name in linear_names(arch):
            storage = layers[name]["storage"]
            if storage not in STORAGES:
                raise KeyError(f"storage {storage!r}")
            needed += [f"{name}.{p}" for p in STORAGES.get(storage).parts]
        int(header["obs_dim"]), int(header["act_dim"])
        if header["kind"] not in KINDS:
            raise KeyError("kind")
    except (KeyError, TypeError) as e:
        raise PolicyError(f"{path}: the policy header is incomplete or malformed (at {e})") from None
    missing = [k for k in needed if k not in tensors]
    if missing:
        raise PolicyError(f"{path}: the policy file lacks tensors {', '.join(missing[:5])}"
                          f"{' ...' if len(missing) > 5 else ''} (corrupt or hand-edited?)")
    for name in linear_names(arch):
        _check_layer(path, name, layers[name], tensors)
    first, last = layers[linear_names(arch)[0]]["shape"], layers[linear_names(arch)[-1]]["shape"]
    if first[1] != input_width(header) or last[0] != int(header["act_dim"]):
        raise PolicyError(f"{path}: layer sizes {first} ... {last} do not fit obs_dim {header['obs_dim']} and "
                          f"act_dim {header['act_dim']}")


def _check_layer(path: Path, name: str, entry: dict, tensors: dict) -> None:
    """Every stored tensor of a layer has the shape its header entry implies."""
    expected = {f"{name}.bias": (entry["shape"][0],), **STORAGES.get(entry["storage"]).shapes(name, entry, tensors)}
    for key, shape in expected.items():
        if tuple(tensors[key].shape) != shape:
            raise PolicyError(f"{path}: {key} has shape {tuple(tensors[key].shape)}, its header implies {shape} "
                              f"(corrupt or hand-edited?)")
