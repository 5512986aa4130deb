"""Policy storages: how one linear weight W (out, in) is kept in a policy file, and back, and which
kernels (sparserl.kernels) a stored layer can run on.

- dense: ``{name}.weight`` float32 (out, in);
- csr:   ``{name}.crow`` int32 (out + 1), ``{name}.col`` int16 (int32 if in > 32767), ``{name}.values``;
- nm:    ``{name}.values`` float32 (out, G, N) and ``{name}.offsets`` uint8 (out, G, N), the kept
         weights of each group of M inputs and their positions in the group (G = ceil(in / M); a
         group with fewer than N kept weights is padded with zeros at offset 0).

Storages are registered in `STORAGES` (`register_storage` adds one); `encode_layer` takes the
smallest that holds a weight (nm only where every group of M inputs keeps at most N). Only torch is
imported here, besides the registry.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from sparserl import kernels
from sparserl.errors import ConfigError
from sparserl.registry import Registry

KernelBuilder = Callable[[], kernels.Kernel]


class Storage:
    """One way to store a linear weight. A subclass sets `name` and `parts` (the tensor-name
    suffixes it writes beside ``{name}.bias``) and implements `size`, `encode`, `decode` and
    `shapes`; `forms` lists the kernels the stored layer can run as (dense always, CSR for any
    sparse storage by default)."""

    name = ""
    parts: tuple[str, ...] = ()
    sparse = True
    """Whether the storage keeps only the nonzeros (its layers run as CSR when no form is forced)."""

    def size(self, weight: torch.Tensor, nm: tuple[int, int] | None, kept: int) -> int | None:
        """Bytes of `weight` (with `kept` nonzeros) in this storage; None where it cannot hold it."""
        raise NotImplementedError

    def encode(self, name: str, weight: torch.Tensor, nm: tuple[int, int] | None) -> tuple[dict, dict]:
        """(tensors, extra header entries) of `weight`."""
        raise NotImplementedError

    def decode(self, name: str, entry: dict, tensors: dict) -> torch.Tensor:
        """The dense weight (out, in) of a stored layer (lossless)."""
        raise NotImplementedError

    def shapes(self, name: str, entry: dict, tensors: dict) -> dict[str, tuple[int, ...]]:
        """The shape every stored tensor must have, given the layer's header entry."""
        raise NotImplementedError

    def forms(self, name: str, entry: dict, tensors: dict, bias: torch.Tensor) -> dict[str, KernelBuilder]:
        """Each kernel the layer can run as, built on demand."""
        forms = {"dense": lambda: kernels.DenseKernel(self.decode(name, entry, tensors), bias)}
        if self.sparse:
            forms["csr"] = lambda: kernels.CSRKernel(kernels.csr_from_dense(self.decode(name, entry, tensors)), bias)
        return forms


def _check(name: str, storage: Storage) -> None:
    if not isinstance(storage, Storage) or storage.name != name or not storage.parts:
        raise ConfigError(f"cannot register policy storage {name!r}: give a Storage instance whose name is "
                          f"{name!r} and whose parts name the tensors it writes")
    for method in ("size", "encode", "decode", "shapes"):
        if getattr(type(storage), method) is getattr(Storage, method):
            raise ConfigError(f"cannot register policy storage {name!r}: it does not implement {method}")


STORAGES: Registry[Storage] = Registry("policy storage", _check)


def register_storage(storage: Storage) -> Storage:
    """Add a policy storage under its name (a clash or a missing method is refused)."""
    return STORAGES.register(storage.name, storage)


def _groups(weight: torch.Tensor, m: int) -> torch.Tensor:
    """`weight` (out, in) zero-padded to (out, G, m)."""
    out, fan_in = weight.shape
    pad = (-fan_in) % m
    return F.pad(weight, (0, pad)).view(out, (fan_in + pad) // m, m)


def fits_nm(weight: torch.Tensor, n: int, m: int) -> bool:
    """Whether every group of m consecutive inputs of every row has at most n nonzeros."""
    return bool(((_groups(weight, m) != 0).sum(-1) <= n).all())


def pack_nm(weight: torch.Tensor, n: int, m: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(values, offsets) of a weight that `fits_nm`: each group's nonzeros (padded with zeros)."""
    grouped = _groups(weight, m)
    fan_in = weight.shape[1]
    real = (torch.arange(grouped.shape[1] * m).view(1, -1, m) < fan_in)
    score = torch.where(real, grouped.abs(), torch.full_like(grouped, -1.0))  # padding columns last
    offsets = score.topk(n, dim=-1).indices.sort(-1).values
    values = grouped.gather(-1, offsets)
    column = offsets + torch.arange(grouped.shape[1]).view(1, -1, 1) * m
    outside = column >= fan_in  # only when a partial last group has fewer than n real inputs
    return values.masked_fill(outside, 0.0), offsets.masked_fill(outside, 0).to(torch.uint8)


def nm_index(offsets: torch.Tensor, m: int) -> torch.Tensor:
    """Absolute input columns (out, G * N) of packed N:M offsets (out, G, N)."""
    groups = offsets.shape[1]
    return (offsets.long() + torch.arange(groups).view(1, -1, 1) * m).flatten(1)


class Dense(Storage):
    name, parts, sparse = "dense", ("weight",), False

    def size(self, weight, nm, kept):
        return weight.numel() * 4

    def encode(self, name, weight, nm):
        return {f"{name}.weight": weight}, {}

    def decode(self, name, entry, tensors):
        return tensors[f"{name}.weight"]

    def shapes(self, name, entry, tensors):
        return {f"{name}.weight": tuple(entry["shape"])}


class CSR(Storage):
    name, parts = "csr", ("crow", "col", "values")

    @staticmethod
    def _col_dtype(fan_in: int) -> torch.dtype:
        return torch.int16 if fan_in <= 32767 else torch.int32  # int16 column indices while they fit

    def size(self, weight, nm, kept):
        out, fan_in = weight.shape
        return kept * (4 + self._col_dtype(fan_in).itemsize) + (out + 1) * 4

    def encode(self, name, weight, nm):
        csr = kernels.csr_from_dense(weight)
        return {f"{name}.crow": csr.crow_indices().to(torch.int32),
                f"{name}.col": csr.col_indices().to(self._col_dtype(weight.shape[1])),
                f"{name}.values": csr.values().contiguous()}, {}

    def _csr(self, name, entry, tensors):
        return kernels.csr_from_parts(tensors[f"{name}.crow"], tensors[f"{name}.col"], tensors[f"{name}.values"],
                                      tuple(entry["shape"]))

    def decode(self, name, entry, tensors):
        return self._csr(name, entry, tensors).to_dense()

    def shapes(self, name, entry, tensors):
        kept = tensors[f"{name}.values"].shape[0]
        return {f"{name}.crow": (entry["shape"][0] + 1,), f"{name}.col": (kept,), f"{name}.values": (kept,)}

    def forms(self, name, entry, tensors, bias):
        return {**super().forms(name, entry, tensors, bias),
                "csr": lambda: kernels.CSRKernel(self._csr(name, entry, tensors), bias)}


class PackedNM(Storage):
    name, parts = "nm", ("values", "offsets")

    def size(self, weight, nm, kept):
        if nm is None or not fits_nm(weight, *nm):
            return None
        out, fan_in = weight.shape
        return out * math.ceil(fan_in / nm[1]) * nm[0] * 5

    def encode(self, name, weight, nm):
        values, offsets = pack_nm(weight, *nm)
        return {f"{name}.values": values, f"{name}.offsets": offsets}, {"nm": list(nm)}

    def decode(self, name, entry, tensors):
        out, fan_in = entry["shape"]
        m = entry["nm"][1]
        values, offsets = tensors[f"{name}.values"], tensors[f"{name}.offsets"]
        dense = torch.zeros(out, offsets.shape[1] * m).scatter_add_(1, nm_index(offsets, m), values.flatten(1))
        return dense[:, :fan_in].contiguous()

    def shapes(self, name, entry, tensors):
        (out, fan_in), (n, m) = entry["shape"], entry["nm"]
        packed = (out, math.ceil(fan_in / m), n)
        return {f"{name}.values": packed, f"{name}.offsets": packed}

    def forms(self, name, entry, tensors, bias):
        index = lambda: nm_index(tensors[f"{name}.offsets"], entry["nm"][1])  # noqa: E731
        return {**super().forms(name, entry, tensors, bias),
                "nm": lambda: kernels.NMKernel(tensors[f"{name}.values"].flatten(1), index(), bias)}


for _storage in (Dense(), CSR(), PackedNM()):
    register_storage(_storage)


def storage_bytes(weight: torch.Tensor, nm: tuple[int, int] | None, kept: int) -> dict[str, int]:
    """Bytes of `weight` (with `kept` nonzeros) in each storage that can hold it."""
    sizes = {name: storage.size(weight, nm, kept) for name, storage in STORAGES.items()}
    return {name: size for name, size in sizes.items() if size is not None}


def encode_layer(name: str, weight: torch.Tensor, storage: str, nm: tuple[int, int] | None) -> tuple[dict, dict]:
    """(tensors, header entry) for one linear weight (out, in) in `storage` (auto: the smallest)."""
    weight = weight.detach().float().contiguous()
    kept = int((weight != 0).sum())
    sizes = storage_bytes(weight, nm, kept)
    if storage == "auto" or storage not in sizes:
        # an explicit nm for a layer that is not N:M (kept dense, say) falls back to the smallest
        storage = min(sizes, key=sizes.get)
    tensors, extra = STORAGES.get(storage).encode(name, weight, nm)
    return tensors, {"storage": storage, "shape": list(weight.shape), "kept": kept, **extra}


def decode_dense(name: str, entry: dict, tensors: dict) -> torch.Tensor:
    """The dense weight (out, in) of a stored layer."""
    return STORAGES.get(entry["storage"]).decode(name, entry, tensors)
