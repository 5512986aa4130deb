"""Deployable policies: a compact safetensors file and a loader that needs only torch.

    from sparserl import load_policy
    policy = load_policy("policy.safetensors")      # or a run directory
    action = policy.act(obs)                        # (obs_dim,) -> (act_dim,), or a batch

This module imports torch, numpy and safetensors and nothing of sparserl's training code: the file
header describes the actor (architecture, sizes, observation statistics) and the loader runs it on
the kernels of sparserl.kernels, through the body's one description in sparserl.architecture.

The file format (header, storages, checksum) is sparserl.policy_file's.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from sparserl import kernels
from sparserl.errors import PolicyError
from sparserl.policy_file import KINDS, architecture, encoder_names, linear_names, norm_names, read
from sparserl.storage import STORAGES, decode_dense

BACKENDS = ("auto", *kernels.KERNELS, "semi_structured")
OUTPUTS = {"tanh": torch.tanh, "clip": lambda x: x.clamp(-1.0, 1.0), "argmax": lambda x: x.argmax(dim=-1)}
"""The output rules of policy_file.KINDS."""


def _conv_layers(encoder: dict, names: list[str], layers: dict, tensors: dict) -> list[tuple]:
    """(weight, bias, stride) of each convolution, its (out, in * k * k) storage back in conv shape."""
    k = encoder["kernel"]
    return [(decode_dense(n, layers[n], tensors).reshape(encoder["filters"], -1, k, k), tensors[f"{n}.bias"], stride)
            for n, stride in zip(names, encoder["strides"])]


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
    """A deterministic policy loaded from a policy file: `act(obs)` gives actions in [-1, 1] (or, for a
    categorical policy, the index of the action).

    `backends` names the kernel each linear layer runs on; `header` is the file's description
    (architecture, sizes, per-layer storage, where it came from)."""

    def __init__(self, header: dict, tensors: dict[str, torch.Tensor], backend: str = "auto", batch: int = 1):
        if backend not in BACKENDS:
            raise PolicyError(f"unknown backend {backend!r}; use one of {', '.join(BACKENDS)}")
        self.header, self.arch = header, header["architecture"]
        self.obs_dim, self.act_dim, self.kind = int(header["obs_dim"]), int(header["act_dim"]), header["kind"]
        layers = header["layers"]
        self.encoder = self.arch.get("encoder")
        convs = encoder_names(self.arch)[:-1]  # (the trunk's linear layer runs as a linear kernel)
        self.convs = _conv_layers(self.encoder, convs, layers, tensors) if self.encoder else []
        self.obs_shape = tuple(header["obs_shape"]) if self.encoder else (self.obs_dim,)
        body_in = self.encoder["trunk"] if self.encoder else self.obs_dim
        self.body = architecture(self.arch, body_in, self.act_dim)
        self.linears = {n: _kernel(n, layers[n], tensors, backend, batch) for n in linear_names(self.arch)
                        if n not in convs}
        self.norms = {n: (tensors[f"{n}.weight"], tensors[f"{n}.bias"]) for n in norm_names(self.arch)}
        self.obs_stats = None
        if self.arch["obs_norm"]:
            self.obs_stats = (tensors["obs_norm.mean"], torch.sqrt(tensors["obs_norm.var"] + 1e-8))
        self._output = OUTPUTS[KINDS[self.kind]]
        self.device = "cuda" if backend == "semi_structured" else "cpu"
        if self.device != "cpu":
            self.norms = {n: (w.to(self.device), b.to(self.device)) for n, (w, b) in self.norms.items()}
            self.convs = [(w.to(self.device), b.to(self.device), s) for w, b, s in self.convs]
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
        if self.kind == "categorical":
            raise PolicyError("a categorical policy's actions are indices of the discrete actions: nothing to rescale")
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

    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        """A pixel policy's trunk features of frame stacks (B, C, H, W) in [0, 255]: the frames scaled
        to [-0.5, 0.5], each convolution and a ReLU, then the trunk's Linear, LayerNorm and tanh."""
        x = frames / 255.0 - 0.5
        for weight, bias, stride in self.convs:
            x = torch.relu_(F.conv2d(x, weight, bias, stride=stride))
        return torch.tanh(self._norm("trunk.norm", self.linears["trunk"](x.flatten(1))))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """Actions (B, act_dim) in [-1, 1] for observations (B, obs_dim), or for a pixel policy
        frame stacks (B, C, H, W) (float32 tensors)."""
        x = self.encode(obs) if self.encoder else obs
        if self.obs_stats is not None:
            x = (x - self.obs_stats[0]) / self.obs_stats[1]
        lin = self.linears
        x = self.body.forward(x, lambda name, h: lin[name](h), self._norm, torch.relu_)
        return self._output(x)  # (SAC and Stream AC exports keep only the mean rows of their heads)

    def _as_batch(self, obs) -> tuple[torch.Tensor, bool]:
        if type(obs) is np.ndarray and obs.dtype == np.float32 and obs.shape == self.obs_shape:
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
        rank = len(self.obs_shape)
        single = x.dim() == rank
        if x.dim() not in (rank, rank + 1) or tuple(x.shape[-rank:]) != self.obs_shape:
            shape = ", ".join(map(str, self.obs_shape))
            raise PolicyError(f"observation must have shape ({shape}{',' if rank == 1 else ''}) or (batch, {shape}), "
                              f"got {tuple(x.shape)}")
        return (x.unsqueeze(0) if single else x).to(torch.float32), single

    def act(self, obs) -> np.ndarray:
        """The action for one observation (obs_dim,) -> (act_dim,), or a batch (B, obs_dim) -> (B, act_dim);
        a categorical policy gives the action's index, () or (B,).

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
        obs = "x".join(map(str, self.obs_shape)) + (" frames, conv encoder" if self.encoder else "")
        return f"Policy({self.kind}, {self.arch['network']}, obs {obs} -> act {self.act_dim}; {kinds})"


def load_policy(path: str | Path, backend: str = "auto", batch: int = 1) -> Policy:
    """Load a policy file (or a run directory's policy.safetensors).

    `backend`: the kernel of each sparse layer — ``auto`` (measure dense, CSR and packed N:M at
    `batch` and keep the fastest; the default), ``dense``, ``csr``, ``nm`` (where stored N:M), or
    ``semi_structured`` (CUDA 2:4 kernels; needs a GPU, untested by the project)."""
    header, tensors = read(path)
    return Policy(header, tensors, backend, batch)
