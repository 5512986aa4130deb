"""Policy storages: how one linear weight W (out, in) is kept in a policy file, and back.

- dense: ``{name}.weight`` float32 (out, in);
- csr:   ``{name}.crow`` int32 (out + 1), ``{name}.col`` int16 (int32 if in > 32767), ``{name}.values``;
- nm:    ``{name}.values`` float32 (out, G, N) and ``{name}.offsets`` uint8 (out, G, N), the kept
         weights of each group of M inputs and their positions in the group (G = ceil(in / M); a
         group with fewer than N kept weights is padded with zeros at offset 0).

`STORAGES` lists them with the tensors each stores; `encode_layer` takes the smallest that fits
(nm only where every group of M inputs keeps at most N). Only torch is imported here.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from sparserl import kernels

#: Each storage and the tensors (name suffixes) it writes for a layer, besides ``{name}.bias``.
STORAGES: dict[str, tuple[str, ...]] = {"dense": ("weight",), "csr": ("crow", "col", "values"),
                                        "nm": ("values", "offsets")}


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


def _col_dtype(fan_in: int) -> torch.dtype:
    """CSR column indices: int16 while they fit."""
    return torch.int16 if fan_in <= 32767 else torch.int32


def storage_bytes(weight: torch.Tensor, nm: tuple[int, int] | None, kept: int) -> dict[str, int]:
    """Bytes of `weight` (with `kept` nonzeros) in each storage it can take (nm only if it fits)."""
    out, fan_in = weight.shape
    column = _col_dtype(fan_in).itemsize
    sizes = {"dense": out * fan_in * 4, "csr": kept * (4 + column) + (out + 1) * 4}
    if nm is not None and fits_nm(weight, *nm):
        sizes["nm"] = out * math.ceil(fan_in / nm[1]) * nm[0] * 5
    return sizes


def encode_layer(name: str, weight: torch.Tensor, storage: str, nm: tuple[int, int] | None) -> tuple[dict, dict]:
    """(tensors, header entry) for one linear weight (out, in) in `storage` (auto: the smallest)."""
    weight = weight.detach().float().contiguous()
    kept = int((weight != 0).sum())
    sizes = storage_bytes(weight, nm, kept)
    if storage == "auto" or storage not in sizes:
        # an explicit nm for a layer that is not N:M (kept dense, say) falls back to the smallest
        storage = min(sizes, key=sizes.get)
    entry = {"storage": storage, "shape": list(weight.shape), "kept": kept}
    if storage == "dense":
        return {f"{name}.weight": weight}, entry
    if storage == "csr":
        csr = kernels.csr_from_dense(weight)
        col_dtype = _col_dtype(weight.shape[1])
        return {f"{name}.crow": csr.crow_indices().to(torch.int32), f"{name}.col": csr.col_indices().to(col_dtype),
                f"{name}.values": csr.values().contiguous()}, entry
    values, offsets = pack_nm(weight, *nm)
    return {f"{name}.values": values, f"{name}.offsets": offsets}, {**entry, "nm": list(nm)}


def decode_dense(name: str, entry: dict, tensors: dict) -> torch.Tensor:
    """The dense weight (out, in) of a stored layer."""
    out, fan_in = entry["shape"]
    storage = entry["storage"]
    if storage == "dense":
        return tensors[f"{name}.weight"]
    if storage == "csr":
        return _csr(name, entry, tensors).to_dense()
    n, m = entry["nm"]
    values, offsets = tensors[f"{name}.values"], tensors[f"{name}.offsets"]
    groups = offsets.shape[1]
    dense = torch.zeros(out, groups * m).scatter_add_(1, nm_index(offsets, m), values.flatten(1))
    return dense[:, :fan_in].contiguous()


def _csr(name: str, entry: dict, tensors: dict) -> torch.Tensor:
    return kernels.csr_from_parts(tensors[f"{name}.crow"], tensors[f"{name}.col"], tensors[f"{name}.values"],
                                  tuple(entry["shape"]))
