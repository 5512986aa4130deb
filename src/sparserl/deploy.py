"""Deployable policies: a compact safetensors file and a loader that needs only torch.

    from sparserl import load_policy
    policy = load_policy("policy.safetensors")      # or a run directory
    action = policy.act(obs)                        # (obs_dim,) -> (act_dim,), or a batch

This module imports torch, numpy and safetensors and nothing of sparserl's training code: the file
header describes the actor (architecture, sizes, observation statistics) and the loader runs it on
the kernels of sparserl.kernels, through the body's one description in sparserl.architecture.

File format 1: safetensors tensors plus one metadata entry ``sparserl_policy`` (JSON):

    {"format": 1, "kind": "deterministic" | "gaussian", "obs_dim", "act_dim",
     "architecture": {"network": "mlp" | "simba" | "bronet", "hidden", "width", "blocks", "obs_norm"},
     "layers": {name: {"storage", "shape": [out, in], "kept", "nm"?}},
     "sparsity": {"density", "weights"}, "observation_normalisation": {"mean", "var"} (a copy),
     "spaces": {"observation": {"shape"}, "action": {"shape", "low", "high"}},   (runs' exports)
     "source": {env, algo, step, action_repeat, sparsity, ...}}

Layers and norms are named as sparserl.architecture names them (``layers.{i}`` for an MLP;
``embed``, ``blocks.{i}.fc1``/``fc2``, ``head`` and norms ``blocks.{i}.norm1``/``norm2``, ``norm`` for
SimBa and BroNet); observation statistics ``obs_norm.mean``/``var``. Each linear weight W (out, in)
is stored in the smallest registered storage of sparserl.storage (dense, CSR or packed N:M), with
``{name}.bias`` float32 (out) beside it. A 1:8 layer costs 5/32 of its dense bytes.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from sparserl import kernels
from sparserl.architecture import BODIES, Architecture
from sparserl.errors import PolicyError
from sparserl.storage import STORAGES, decode_dense, encode_layer

FORMAT = 1
META_KEY = "sparserl_policy"
POLICY_FILE = "policy.safetensors"
BACKENDS = ("auto", *kernels.KERNELS, "semi_structured")


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


def linear_names(arch: dict) -> list[str]:
    """The linear layers of an exported actor, input first."""
    return [name for name, _, _ in architecture(arch).linears()]


def norm_names(arch: dict) -> list[str]:
    return [name for name, _ in architecture(arch).norms()]


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


def write(path: str | Path, header: dict, tensors: dict[str, torch.Tensor], writer=None) -> None:
    """Write a policy file (`writer(path, data)`, default a plain write; training passes an atomic one)."""
    from safetensors.torch import save

    blob = save({k: v.contiguous() for k, v in tensors.items()},
                metadata={META_KEY: json.dumps({"format": FORMAT, **header})})
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
    return header, tensors


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
        if header["kind"] not in ("deterministic", "gaussian"):
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
    if first[1] != int(header["obs_dim"]) or last[0] != int(header["act_dim"]):
        raise PolicyError(f"{path}: layer sizes {first} ... {last} do not fit obs_dim {header['obs_dim']} and "
                          f"act_dim {header['act_dim']}")


def _check_layer(path: Path, name: str, entry: dict, tensors: dict) -> None:
    """Every stored tensor of a layer has the shape its header entry implies."""
    expected = {f"{name}.bias": (entry["shape"][0],), **STORAGES.get(entry["storage"]).shapes(name, entry, tensors)}
    for key, shape in expected.items():
        if tuple(tensors[key].shape) != shape:
            raise PolicyError(f"{path}: {key} has shape {tuple(tensors[key].shape)}, its header implies {shape} "
                              f"(corrupt or hand-edited?)")


def _kernel(name: str, entry: dict, tensors: dict, backend: str, batch: int) -> kernels.Kernel:
    """The kernel of one layer. A forced backend applies where the layer's storage allows it (csr
    for any sparse storage, nm for packed N:M layers); elsewhere the layer runs in its stored form
    (CSR for sparse layers). auto measures every form the layer can take at `batch`."""
    bias, storage = tensors[f"{name}.bias"], STORAGES.get(entry["storage"])
    if backend == "semi_structured":
        return kernels.semi_structured_kernel(decode_dense(name, entry, tensors), bias)
    forms = storage.forms(name, entry, tensors, bias)
    chosen = [f for f in forms if backend in ("auto", f)] or ["csr" if storage.sparse else "dense"]
    candidates = {form: forms[form]() for form in chosen}
    return kernels.choose(candidates, entry["shape"][1], batch, key=(*entry["shape"], entry["kept"], storage.name))


class Policy:
    """A deterministic policy loaded from a policy file: `act(obs)` gives actions in [-1, 1].

    `backends` names the kernel each linear layer runs on; `header` is the file's description
    (architecture, sizes, per-layer storage, where it came from)."""

    def __init__(self, header: dict, tensors: dict[str, torch.Tensor], backend: str = "auto", batch: int = 1):
        if backend not in BACKENDS:
            raise PolicyError(f"unknown backend {backend!r}; use one of {', '.join(BACKENDS)}")
        self.header, self.arch = header, header["architecture"]
        self.obs_dim, self.act_dim, self.kind = int(header["obs_dim"]), int(header["act_dim"]), header["kind"]
        layers = header["layers"]
        self.body = architecture(self.arch, self.obs_dim, self.act_dim)
        self.linears = {n: _kernel(n, layers[n], tensors, backend, batch) for n in linear_names(self.arch)}
        self.norms = {n: (tensors[f"{n}.weight"], tensors[f"{n}.bias"]) for n in norm_names(self.arch)}
        self.obs_stats = None
        if self.arch["obs_norm"]:
            self.obs_stats = (tensors["obs_norm.mean"], torch.sqrt(tensors["obs_norm.var"] + 1e-8))
        self.device = "cuda" if backend == "semi_structured" else "cpu"
        if self.device != "cpu":
            self.norms = {n: (w.to(self.device), b.to(self.device)) for n, (w, b) in self.norms.items()}
            if self.obs_stats is not None:
                self.obs_stats = tuple(t.to(self.device) for t in self.obs_stats)

    @property
    def meta(self) -> dict:
        """Where the policy came from (env, algo, step, ...)."""
        return self.header.get("source", {})

    @property
    def spaces(self) -> dict:
        """The environment's observation shape and action bounds, where the file records them."""
        return self.header.get("spaces", {})

    def env_action(self, action: np.ndarray) -> np.ndarray:
        """Rescale an action in [-1, 1] to the environment's own bounds (as recorded in the file)."""
        bounds = self.spaces.get("action")
        if not bounds:
            raise PolicyError("this policy file does not record the environment's action bounds")
        low, high = np.asarray(bounds["low"]), np.asarray(bounds["high"])
        return (low + (np.asarray(action) + 1.0) * 0.5 * (high - low)).astype(np.float32)

    @property
    def backends(self) -> dict[str, str]:
        return {n: k.name for n, k in self.linears.items()}

    def _norm(self, name: str, x: torch.Tensor) -> torch.Tensor:
        weight, bias = self.norms[name]
        return F.layer_norm(x, x.shape[-1:]) * weight + bias

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """Actions (B, act_dim) in [-1, 1] for observations (B, obs_dim) (float32 tensors)."""
        x = obs
        if self.obs_stats is not None:
            x = (x - self.obs_stats[0]) / self.obs_stats[1]
        lin = self.linears
        x = self.body.forward(x, lambda name, h: lin[name](h), self._norm, torch.relu_)
        return torch.tanh(x)  # a SAC export keeps only the mean rows of its head: tanh(mean)

    def _as_batch(self, obs) -> tuple[torch.Tensor, bool]:
        if type(obs) is np.ndarray and obs.dtype == np.float32 and obs.shape == (self.obs_dim,):
            return torch.from_numpy(obs).unsqueeze(0), True  # the common case, without copies
        if isinstance(obs, torch.Tensor):
            x = obs.detach().cpu()
        else:
            try:
                x = np.asarray(obs)
            except (ValueError, TypeError) as e:
                raise PolicyError(f"observation could not be read as an array: {e}") from None
            if x.dtype.kind not in "fiu":
                raise PolicyError(f"observation must be real numbers (float or int), got dtype {x.dtype}")
            x = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
        if x.dtype.is_complex or x.dtype == torch.bool:
            raise PolicyError(f"observation must be real numbers (float or int), got dtype {x.dtype}")
        single = x.dim() == 1
        if x.dim() not in (1, 2) or x.shape[-1] != self.obs_dim:
            raise PolicyError(f"observation must have shape ({self.obs_dim},) or (batch, {self.obs_dim}), "
                              f"got {tuple(x.shape)}")
        return (x.unsqueeze(0) if single else x).to(torch.float32), single

    def act(self, obs) -> np.ndarray:
        """The action for one observation (obs_dim,) -> (act_dim,), or a batch (B, obs_dim) -> (B, act_dim).

        No autograd context is needed: no tensor of the policy requires a gradient, and `_as_batch`
        detaches tensor inputs."""
        x, single = self._as_batch(obs)
        if self.device != "cpu":
            x = x.to(self.device)
            action = self.forward(x).cpu()
        else:
            action = self.forward(x)
        return (action[0] if single else action).numpy()

    __call__ = act

    def __repr__(self) -> str:
        kinds = ", ".join(f"{n}: {k}" for n, k in self.backends.items())
        return f"Policy({self.kind}, {self.arch['network']}, obs {self.obs_dim} -> act {self.act_dim}; {kinds})"


def load_policy(path: str | Path, backend: str = "auto", batch: int = 1) -> Policy:
    """Load a policy file (or a run directory's policy.safetensors).

    `backend`: the kernel of each sparse layer — ``auto`` (measure dense, CSR and packed N:M at
    `batch` and keep the fastest; the default), ``dense``, ``csr``, ``nm`` (where stored N:M), or
    ``semi_structured`` (CUDA 2:4 kernels; needs a GPU, untested by the project)."""
    header, tensors = read(path)
    return Policy(header, tensors, backend, batch)
