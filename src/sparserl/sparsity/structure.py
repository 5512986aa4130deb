"""The CSR structure of one masked weight, built once per mask: row pointers and column indices of
A = M ⊙ W (out, in) and of its transpose, and where each kept weight sits in the parameter, so each
training step only gathers the current values (sparserl.sparsity.execution runs the products)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from sparserl import kernels, native


@dataclass
class Structure:
    """The kept positions of one member's (out, in) weight, in both orientations.

    Kept values are read from the parameter in storage order (`storage`, ascending flat
    positions: one sequential pass) and then permuted within that compact vector into each CSR
    order; reading them in CSR order directly strides across the whole weight (for an ensemble
    layer stored (E, in, out), A's rows are columns of the storage): 4.4 ms against 1.8 ms for one
    member of a 2048 x 2048 layer at 9 % density on the 2-core machine."""

    shape: tuple[int, int]
    crow: torch.Tensor
    col: torch.Tensor
    crow_t: torch.Tensor
    col_t: torch.Tensor
    storage: torch.Tensor
    """Flat positions of the kept weights in the parameter, ascending."""
    a_index: torch.Tensor
    """For each entry of A (out, in) in CSR order, its index in the compact storage-order vector."""
    a_order: torch.Tensor
    """The inverse: for each compact index, the entry of A it holds."""
    at_index: torch.Tensor
    """For each entry of Aᵀ (in, out) in CSR order, its compact index."""
    pattern: torch.Tensor
    """A (out, in) CSR of zeros with A's structure: where the SDDMM writes the weight gradient."""

    @classmethod
    def build(cls, mask_oi: torch.Tensor, positions_oi: torch.Tensor) -> Structure:
        """From a member's mask (out, in) and the flat parameter position of every (out, in) entry."""
        out, fan_in = mask_oi.shape
        kept = mask_oi != 0
        rows, cols = kept.nonzero(as_tuple=True)
        crow = torch.zeros(out + 1, dtype=torch.int32)
        crow[1:] = torch.cumsum(kept.sum(1), 0)
        cols_t, rows_t = kept.t().nonzero(as_tuple=True)
        crow_t = torch.zeros(fan_in + 1, dtype=torch.int32)
        crow_t[1:] = torch.cumsum(kept.sum(0), 0)
        col = cols.to(torch.int32)
        pattern = kernels.csr_from_parts(crow, col, torch.zeros(len(col)), (out, fan_in))
        perm, perm_t = positions_oi[rows, cols], positions_oi.t()[cols_t, rows_t]
        storage, a_order = perm.sort()
        a_index = torch.empty_like(a_order)
        a_index[a_order] = torch.arange(len(a_order))
        at_index = torch.searchsorted(storage, perm_t)
        return cls((out, fan_in), crow, col, crow_t, rows_t.to(torch.int32), storage, a_index, a_order, at_index,
                   pattern)

    def compact(self, flat_weight: torch.Tensor) -> torch.Tensor:
        """The kept weights in storage order (one sequential gather)."""
        return _gather(flat_weight, self.storage)

    def values(self, compact: torch.Tensor) -> torch.Tensor:
        """A's values in CSR order, from the compact kept values."""
        return _gather(compact, self.a_index)

    def values_t(self, compact: torch.Tensor) -> torch.Tensor:
        """Aᵀ's values in CSR order, from the compact kept values."""
        return _gather(compact, self.at_index)

    def matrix(self, flat_weight: torch.Tensor, compact: torch.Tensor | None = None) -> torch.Tensor:
        compact = self.compact(flat_weight) if compact is None else compact
        return kernels.csr_from_parts(self.crow, self.col, self.values(compact), self.shape)

    def matrix_t(self, compact: torch.Tensor) -> torch.Tensor:
        """Aᵀ from the compact kept values (those the forward read)."""
        return kernels.csr_from_parts(self.crow_t, self.col_t, self.values_t(compact), self.shape[::-1])

    def scatter(self, grad_flat: torch.Tensor, values: torch.Tensor) -> None:
        """Write A-ordered `values` into their positions of a flat parameter-shaped gradient."""
        if native.available():
            native.scatter(grad_flat, self.storage, values, self.a_order)
        else:
            grad_flat.index_put_((self.storage,), values.index_select(0, self.a_order))


def _gather(src: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    return native.gather(src, index) if native.available() else src.index_select(0, index)
