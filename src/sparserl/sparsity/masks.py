"""Mask construction on (members, out, fan_in) views of weights.

All functions take and return tensors shaped (E, out, fan_in): E independent members (1 for a
plain layer), each row one output unit's fan-in. Masks are float32 (1 kept, 0 pruned) so applying
one is a multiply.
"""

from __future__ import annotations

import torch


def topk_mask(scores: torch.Tensor, keep: int | list[int]) -> torch.Tensor:
    """1 at the `keep` highest scores of each member, 0 elsewhere. scores: (E, out, fan_in); `keep`
    one count for every member, or one per member (a population whose agents have levels of their
    own): the members sharing a count are selected together, so each gets the selection it would get
    alone."""
    flat = scores.reshape(scores.shape[0], -1)
    mask = torch.zeros_like(flat, dtype=torch.float32)
    counts = [keep] * flat.shape[0] if isinstance(keep, int) else list(keep)
    for count in sorted(set(counts)):
        if count <= 0:
            continue
        if len(set(counts)) == 1:
            mask.scatter_(1, flat.topk(count, dim=1, sorted=False).indices, 1.0)
        else:
            rows = torch.tensor([m for m, c in enumerate(counts) if c == count], device=flat.device)
            chosen = torch.zeros_like(mask[rows]).scatter_(1, flat[rows].topk(count, dim=1, sorted=False).indices, 1.0)
            mask[rows] = chosen
    return mask.view(scores.shape)


def member_counts(mask: torch.Tensor) -> list[int]:
    """Kept entries of each member of a (E, out, fan_in) mask (one host read)."""
    return [int(c) for c in mask.reshape(mask.shape[0], -1).sum(1).tolist()]


def uniform_scores(shape: torch.Size, generator: torch.Generator, device: torch.device | None = None) -> torch.Tensor:
    """Uniform random scores drawn on the generator's device (the engine's is a CPU generator, so
    masks are the same on every device), then moved to `device`."""
    return torch.rand(shape, generator=generator, device=generator.device).to(device or generator.device)


def random_mask(shape: torch.Size, keep: int | list[int], generator: torch.Generator,
                device: torch.device | None = None) -> torch.Tensor:
    """Exactly `keep` positions per member, uniformly at random (Ma et al. draw Bernoulli; exact
    counts remove the count noise), on `device`."""
    return topk_mask(uniform_scores(shape, generator, device), keep)


def magnitude_mask(weight: torch.Tensor, keep: int | list[int]) -> torch.Tensor:
    """The `keep` largest |w| per member (RLx2's initial mask)."""
    return topk_mask(weight.abs(), keep)


def nm_kept(fan_in: int, n: int, m: int) -> int:
    """Weights kept per row: N per full group of M, ceil(r * N / M) in a last partial group of r."""
    full, rest = divmod(fan_in, m)
    return full * n + -(-rest * n // m)


def nm_mask(weight: torch.Tensor, n: int, m: int, dim: int = -1) -> torch.Tensor:
    """Row-wise N:M projection (RNM-TD3, SR-STE): each row is cut into consecutive groups of M along
    the fan-in axis `dim` and the N largest |w| of each group are kept (the earlier position wins a
    tie, so exactly N are kept); a last partial group of r weights keeps ceil(r * N / M)."""
    return NMProjector([weight], [dim], n, m)()[0]


class NMProjector:
    """Repeated N:M projection of a fixed set of weights (one network's layers), in place.

    Every group of all weights is gathered into one group-major buffer (M, groups): row j holds
    position j of every group, contiguous. Every group is then ranked with 3 M (M - 1) / 2 vectorised
    operations on rows of 1/M of the weights, whatever the number of layers or groups: far cheaper on
    CPU than a topk over millions of tiny groups. A partial last group of r < M weights is
    padded with zeros (a real weight wins every tie with a pad, being earlier) and its ranks are offset
    by N - ceil(r N / M), so the one rule "kept iff rank < N" keeps exactly ceil(r N / M) of it.
    Results alternate between two sets of mask tensors, so the previous masks stay valid for
    comparison; every view is built once and each phase is one multi-tensor operation.
    """

    def __init__(self, weights: list[torch.Tensor], dims: list[int], n: int, m: int):
        self.n, self.m = n, m
        pieces, offset = [], 0
        for weight, dim in zip(weights, dims):
            dim = dim % weight.dim()
            size = weight.shape[dim]
            full, tail = size - size % m, size % m
            layer = []
            for start, length, groups, shift in ((0, full, full // m, 0), (full, tail, 1, n - nm_kept(tail, n, m))):
                if length:
                    width = min(length, m)
                    split = (*weight.shape[:dim], groups, width, *weight.shape[dim + 1:])
                    rest = (*weight.shape[:dim], groups, *weight.shape[dim + 1:])
                    count = torch.Size(rest).numel()
                    layer.append((dim, start, length, width, split, rest, offset, count, shift))
                    offset += count
            pieces.append(layer)
        self.buffer = torch.zeros(m, offset)  # pad rows of partial groups stay 0
        self.base_rank = torch.arange(m - 1, -1, -1, dtype=torch.float32).unsqueeze(1).repeat(1, offset)
        self.rank = torch.empty(m, offset)
        self.keep = torch.zeros(m, offset)  # group-major masks
        self.sources, self.slots = [], []
        for weight, layer in zip(weights, pieces):
            for dim, start, length, width, split, rest, col, count, shift in layer:
                self.sources.append(weight.narrow(dim, start, length).view(split).movedim(dim + 1, 0))
                self.slots.append(self.buffer[:width, col:col + count].view(width, *rest))
                self.base_rank[:, col:col + count] += shift
        self.masks = [[torch.empty_like(w, dtype=torch.float32, memory_format=torch.contiguous_format)
                       for w in weights] for _ in range(2)]
        self.targets = [[mask.narrow(dim, start, length).view(split)
                         for mask, layer in zip(masks, pieces) for dim, start, length, _, split, *_ in layer]
                        for masks in self.masks]
        self.results = [self.keep[:width, col:col + count].view(width, *rest).movedim(0, dim + 1)
                        for layer in pieces for dim, _, _, width, _, rest, col, count, _ in layer]
        self.rows = (self.buffer.unbind(0), self.rank.unbind(0))
        self.beats = torch.empty(offset)
        self.current = 1

    def __call__(self) -> list[torch.Tensor]:
        """Masks of the weights as they are now (1 kept, 0 pruned), laid out like the weights."""
        self.current ^= 1
        torch._foreach_copy_(self.slots, self.sources)
        self.buffer.abs_()
        # rank = how many positions of its group beat each entry: j beats i if s_j > s_i, or s_j == s_i
        # and j < i. Start from M - 1 - j (every later position counted as beating j); each pair's
        # comparison then moves one point, for all groups of all layers at once.
        self.rank.copy_(self.base_rank)
        (scores, rank), beats = self.rows, self.beats
        for j in range(self.m):
            for i in range(j + 1, self.m):
                torch.ge(scores[j], scores[i], out=beats)  # the earlier position j beats i
                rank[i].add_(beats)
                rank[j].sub_(beats)
        torch.lt(self.rank, self.n, out=self.keep)  # kept: fewer than N positions of its group beat it
        torch._foreach_copy_(self.targets[self.current], self.results)
        return self.masks[self.current]

    @property
    def previous(self) -> list[torch.Tensor]:
        """The masks returned by the call before the last."""
        return self.masks[self.current ^ 1]


def drop_and_grow(mask: torch.Tensor, drop_scores: torch.Tensor, grow_scores: torch.Tensor,
                  fraction: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One drop-and-grow topology update of every member (SET; RigL as in RLx2, Tan et al. 2023 §4.1).

    Drop k = floor(fraction * active) active weights (each member's own count) of lowest
    `drop_scores` (|w| for SET and RigL); grow the k inactive positions (just-dropped ones included)
    of highest `grow_scores`.
    The active count is unchanged.
    Returns (new mask, dropped, newly grown): dropped are positions switched off, newly grown
    positions that were inactive before (a weight dropped and regrown at once is neither).
    """
    members = mask.shape[0]
    flat_mask = mask.reshape(members, -1)
    active = member_counts(mask)
    k = [int(fraction * a) for a in active]
    if not any(k):
        zero = torch.zeros_like(mask)
        return mask, zero, zero
    neg_inf = torch.finfo(torch.float32).min
    keep_scores = torch.where(flat_mask > 0, drop_scores.reshape(members, -1), neg_inf)
    keep = topk_mask(keep_scores.view(mask.shape), [a - d for a, d in zip(active, k)]).reshape(members, -1)
    candidates = torch.where(keep > 0, neg_inf, grow_scores.reshape(members, -1).float())
    grow = topk_mask(candidates.view(mask.shape), k).reshape(members, -1)
    new = keep + grow
    dropped = flat_mask * (1.0 - new)
    grown = grow * (1.0 - flat_mask)
    return new.view(mask.shape), dropped.view(mask.shape), grown.view(mask.shape)
