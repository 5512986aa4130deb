"""Layer budgets: how a network's sparsity is spread over its layers.

- uniform: every sparse layer at the global sparsity S.
- er (Erdős–Rényi, Mocanu et al.; RLx2, Ma et al.): density_l = eps * (fan_in + fan_out) /
  (fan_in * fan_out), with one eps solved so that the kept weights total (1 - S) of the budget;
  a layer that would exceed density 1 is made dense and eps re-solved, until valid.
- erk: as er with the kernel dimensions in the sums and products (conv layers; Evci et al.).
- explicit per-layer lambdas (DS-TD3): density_l = lambda_l * (fan_in + fan_out) / (fan_in * fan_out).

The budget counts weight matrices only (RLx2), or all parameters (Ma et al.): then dense biases and
norms are part of the total, so the weight matrices end slightly sparser than S.
Counts are exact per layer member: round(density * numel), never zero.
"""

from __future__ import annotations

from dataclasses import dataclass

from sparserl.errors import ConfigError


@dataclass(frozen=True)
class LayerShape:
    """One sparsifiable weight: `members` independent layers (an ensemble) of fan_out x fan_in
    (x kernel) weights each."""

    name: str
    fan_in: int
    fan_out: int
    members: int = 1
    kernel: tuple[int, ...] = ()

    @property
    def member_numel(self) -> int:
        n = self.fan_in * self.fan_out
        for k in self.kernel:
            n *= k
        return n

    @property
    def numel(self) -> int:
        return self.members * self.member_numel

    def raw(self, with_kernel: bool) -> float:
        """Unnormalised ER density of one member: sum of dims over product of dims."""
        dims = [self.fan_in, self.fan_out] + (list(self.kernel) if with_kernel else [])
        prod = 1
        for d in dims:
            prod *= d
        return sum(dims) / prod


def layer_densities(layers: list[LayerShape], sparsity: float, distribution: str = "er",
                    dense: frozenset[int] = frozenset(), extra_dense_params: int = 0,
                    lambdas: tuple[float, ...] | None = None, owner: str = "network") -> list[float]:
    """Density of each layer so the kept weights total (1 - sparsity) of the budget.

    `dense` are indices forced dense (kept in the budget); `extra_dense_params` are always-dense
    parameters counted in the budget (biases and norms under the "all" scope).
    """
    if not 0.0 <= sparsity < 1.0:
        raise ConfigError(f"{owner}: sparsity must be in [0, 1), got {sparsity!r}")
    if lambdas is not None:
        return _lambda_densities(layers, lambdas, dense, owner)
    if sparsity == 0.0:
        return [1.0] * len(layers)
    total = sum(layer.numel for layer in layers) + extra_dense_params
    target = (1.0 - sparsity) * total
    dense = set(dense)
    with_kernel = distribution == "erk"
    while True:
        budget = target - extra_dense_params - sum(layers[i].numel for i in dense)
        free = [i for i in range(len(layers)) if i not in dense]
        if budget < 0:
            held = (total - sum(layers[i].numel for i in free)) / total
            raise ConfigError(
                f"{owner}: sparsity {sparsity:g} cannot be met: the parts kept dense alone hold "
                f"{held:.1%} of the parameters, so at most {1 - held:.1%} can be pruned")
        if not free:
            return [1.0] * len(layers)
        if distribution == "uniform":
            scale = budget / sum(layers[i].numel for i in free)
            densities = {i: scale for i in free}
        elif distribution in ("er", "erk"):
            eps = budget / sum(layers[i].raw(with_kernel) * layers[i].numel for i in free)
            densities = {i: eps * layers[i].raw(with_kernel) for i in free}
        else:
            raise ConfigError(f"unknown distribution {distribution!r}; allowed: uniform, er, erk")
        overfull = [i for i, d in densities.items() if d > 1.0]  # never for uniform: budget <= free weights
        if not overfull:
            break
        top = max(densities[i] for i in overfull)
        dense |= {i for i in overfull if densities[i] == top}
    out = [1.0 if i in dense else densities[i] for i in range(len(layers))]
    _check_nonempty(layers, out, owner)
    return out


def _lambda_densities(layers, lambdas, dense, owner) -> list[float]:
    sparse = [i for i in range(len(layers)) if i not in dense]
    if len(lambdas) != len(sparse):
        raise ConfigError(f"{owner}: {len(lambdas)} layer_lambdas given for {len(sparse)} sparse layers "
                          f"({', '.join(layers[i].name for i in sparse)})")
    out = [1.0] * len(layers)
    for lam, i in zip(lambdas, sparse):
        out[i] = min(1.0, lam * layers[i].raw(with_kernel=False))
    _check_nonempty(layers, out, owner)
    return out


def _check_nonempty(layers: list[LayerShape], densities: list[float], owner: str) -> None:
    for layer, density in zip(layers, densities):
        if kept_per_member(layer, density) == 0:
            raise ConfigError(f"{owner}: layer {layer.name} ({layer.fan_out}x{layer.fan_in}) would keep no weight "
                              f"at density {density:.2e}; lower the sparsity or use another distribution")


def kept_per_member(layer: LayerShape, density: float) -> int:
    """Weights kept in each member of `layer` at `density` (exact count, rounded)."""
    return int(round(density * layer.member_numel))
