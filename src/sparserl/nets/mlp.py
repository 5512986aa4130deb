"""MLP actors and critics (default 256-256 ReLU, as in TD3, SAC and RLx2).

Twin critics are one `QEnsemble`: every layer holds the weights of all members as one
(E, out, in) tensor and runs them in one batched matmul, so both critics cost one op per layer.
Each member is initialised exactly like an ``nn.Linear`` of the same shape.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from sparserl import kernels

LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


def _relu(x: torch.Tensor) -> torch.Tensor:
    """ReLU in place on a fresh contiguous layer output; out of place on the transposed outputs of
    sparse-executed layers, where in-place ReLU is several times slower on CPU."""
    return torch.relu_(x) if x.is_contiguous() else torch.relu(x)


def _runs_sparse(layer: nn.Module | None) -> bool:
    """Whether `layer` is set to run through sparse kernels (then it wants features-major input)."""
    executor = None if layer is None else layer.__dict__.get("sparse_executor")
    return executor is not None and executor.use_sparse


class _FeaturesMajor(torch.autograd.Function):
    """yᵀ = Wᵀ xᵀ + b for an ensemble layer stored input-major: xᵀ (E, in, B) in, yᵀ (E, out, B)
    out, each gradient computed straight into its own layout. (Autograd through a transposed view
    of the weight would produce a transposed weight gradient and copy it into the parameter's
    layout: 15 % slower for a 2 x 2048 x 2048 layer.)"""

    @staticmethod
    def forward(ctx, x_t, weight, bias):
        ctx.save_for_backward(x_t, weight)
        return torch.baddbmm(bias.transpose(1, 2), weight.transpose(1, 2), x_t)

    @staticmethod
    def backward(ctx, grad):
        x_t, weight = ctx.saved_tensors
        grad_x = torch.bmm(weight, grad) if ctx.needs_input_grad[0] else None
        grad_w = torch.bmm(x_t, grad.transpose(1, 2)) if ctx.needs_input_grad[1] else None
        grad_b = grad.sum(2).unsqueeze(1) if ctx.needs_input_grad[2] else None
        return grad_x, grad_w, grad_b


class EnsembleLinear(nn.Module):
    """E independent linear maps in one batched matmul.

    ``weight`` is stored input-major, (E, in, out), so the forward is ``x @ weight`` with no
    transpose and autograd's weight gradient comes out in the parameter's own layout (a transposed
    (E, out, in) parameter would cost an extra copy per layer and step). ``weight_oi`` gives the
    nn.Linear-style (E, out, in) view, whose rows are the output units' fan-ins. ``bias`` is (E, 1, out).

    Input (B, in) is shared by all members; input (E, B, in) gives each member its own.
    Output is (E, B, out).
    """

    def __init__(self, in_features: int, out_features: int, ensemble_size: int):
        super().__init__()
        self.in_features, self.out_features, self.ensemble_size = in_features, out_features, ensemble_size
        self.weight = nn.Parameter(torch.empty(ensemble_size, in_features, out_features))
        self.bias = nn.Parameter(torch.empty(ensemble_size, 1, out_features))
        self.reset_parameters()

    @property
    def weight_oi(self) -> torch.Tensor:
        """The weights as (E, out, in), a view of `weight`."""
        return self.weight.transpose(1, 2)

    sparse_fan_in_dim = 1
    """The fan-in axis of `weight`, along which N:M groups run (for the sparsity engine)."""

    @staticmethod
    def sparse_weight_view(tensor: torch.Tensor) -> torch.Tensor:
        """A tensor laid out like `weight` seen as (E, out, in), for the sparsity engine."""
        return tensor.transpose(1, 2)

    def reset_parameters(self) -> None:
        bound = 1.0 / math.sqrt(self.in_features)
        with torch.no_grad():
            for member in range(self.ensemble_size):  # nn.Linear's default init, per member
                nn.init.kaiming_uniform_(self.weight_oi[member], a=math.sqrt(5))
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: torch.Tensor, detach: bool = False, member: int | None = None,
                features_major: bool = False) -> torch.Tensor:
        """`detach` uses the weights without recording their gradient (e.g. a critic inside the
        actor's loss); `member` runs only that member (output (1, B, out)); `features_major` stores
        the output (E, out, B), for a sparse-executed layer next (see kernels.features_major)."""
        weight, bias = self.weight, self.bias
        executor = self.__dict__.get("sparse_executor")  # set by Sparsifier.execute_sparse
        if executor is not None and executor.active(weight.detach() if detach else weight):
            if detach:
                weight, bias = weight.detach(), bias.detach()
            rows = bias.view(bias.shape[0], -1)
            return executor(x, weight, rows if member is None else rows[member:member + 1], member)
        if member is not None:
            weight, bias = weight[member:member + 1], bias[member:member + 1]
        if detach:
            weight, bias = weight.detach(), bias.detach()
        if x.dim() == 2:
            x = x.expand(weight.shape[0], *x.shape)
        if features_major or kernels.features_major(x):
            return _FeaturesMajor.apply(x.transpose(1, 2), weight, bias).transpose(1, 2)
        return torch.baddbmm(bias, x, weight)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, " \
               f"ensemble_size={self.ensemble_size}"


class MLP(nn.Module):
    """ReLU MLP of nn.Linear layers (no activation after the last).

    The forward calls F.linear on each layer's parameters directly and applies ReLU in place on
    the fresh layer output: the same maths as nn.Sequential(Linear, ReLU, ...), with one op fewer
    per hidden layer and no per-layer module dispatch, which matters at batch size 1 (acting).
    """

    def __init__(self, in_dim: int, out_dim: int, hidden: tuple[int, ...]):
        super().__init__()
        sizes = (in_dim, *hidden, out_dim)
        self.layers = nn.ModuleList(nn.Linear(i, o) for i, o in zip(sizes[:-1], sizes[1:]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            executor = layer.__dict__.get("sparse_executor")  # set by Sparsifier.execute_sparse
            if executor is not None and executor.active(layer.weight):
                x = executor(x, layer.weight, layer.bias.unsqueeze(0))[0]
            elif x.shape[0] > 1 and (kernels.features_major(x) or i < last and _runs_sparse(self.layers[i + 1])):
                x = torch.addmm(layer.bias.unsqueeze(1), layer.weight, x.t()).t()  # see kernels.features_major
            else:
                x = F.linear(x, layer.weight, layer.bias)
            if i < last:
                x = _relu(x)
        return x


    def hidden(self, x: torch.Tensor, point: str = "post") -> list[torch.Tensor]:
        """The hidden layers' outputs, after ReLU ("post") or before it ("pre"), for diagnostics."""
        return _hidden(self.layers, lambda layer, h: F.linear(h, layer.weight, layer.bias), x, point)


def _hidden(layers, apply, x: torch.Tensor, point: str) -> list[torch.Tensor]:
    out = []
    for layer in layers[:-1]:
        pre = apply(layer, x)
        x = torch.relu(pre)
        out.append(pre if point == "pre" else x)
    return out


def mlp(in_dim: int, out_dim: int, hidden: tuple[int, ...]) -> MLP:
    return MLP(in_dim, out_dim, hidden)


class QEnsemble(nn.Module):
    """E independent Q(s, a) networks evaluated together; forward returns (E, B).

    The body is a ReLU MLP of EnsembleLinear layers (`hidden` widths), or a SimBa/BroNet body given
    as `body` (a ResidualBody with E members and one output). `obs_norm`, a RunningNorm shared with
    the actor, normalises observations first.
    """

    def __init__(self, obs_dim: int, act_dim: int, hidden: tuple[int, ...], ensemble_size: int = 2,
                 body: nn.Module | None = None, obs_norm: nn.Module | None = None):
        super().__init__()
        self.body, self.obs_norm = body, obs_norm
        if body is None:
            sizes = (obs_dim + act_dim, *hidden, 1)
            self.layers = nn.ModuleList(
                EnsembleLinear(i, o, ensemble_size) for i, o in zip(sizes[:-1], sizes[1:]))

    def _input(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        return torch.cat((obs if self.obs_norm is None else self.obs_norm(obs), action), dim=-1)

    def forward(self, obs: torch.Tensor, action: torch.Tensor, detach: bool = False,
                member: int | None = None) -> torch.Tensor:
        x = self._input(obs, action)
        if self.body is not None:
            return self.body(x, detach=detach, member=member).squeeze(-1)
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            x = layer(x, detach=detach, member=member, features_major=i < last and _runs_sparse(self.layers[i + 1]))
            if i < last:
                x = _relu(x)
        return x.squeeze(-1)

    def hidden(self, obs: torch.Tensor, action: torch.Tensor, point: str = "post") -> list[torch.Tensor]:
        """Hidden layers' outputs, (E, B, width) each, after ReLU ("post") or before it ("pre")."""
        x = self._input(obs, action)
        if self.body is not None:
            return self.body.hidden(x, point)
        return _hidden(self.layers, lambda layer, h: layer(h), x, point)


class Body(nn.Module):
    """An actor's body: optional running observation normalisation, then a ReLU MLP (`hidden`) or a
    SimBa/BroNet body (`network`, `width`, `blocks`), mapping (B, obs) to (B, out)."""

    def __init__(self, obs_dim: int, out_dim: int, hidden: tuple[int, ...], network: str = "mlp",
                 width: int = 128, blocks: int = 1, obs_norm: bool | nn.Module = False):
        super().__init__()
        from sparserl.nets.simba import ResidualBody, RunningNorm

        self.obs_norm = obs_norm if isinstance(obs_norm, nn.Module) else RunningNorm(obs_dim) if obs_norm else None
        self.residual = network != "mlp"
        self.net = ResidualBody(obs_dim, out_dim, width, blocks, 1, network) if self.residual else \
            mlp(obs_dim, out_dim, hidden)

    def _input(self, obs: torch.Tensor) -> torch.Tensor:
        return obs if self.obs_norm is None else self.obs_norm(obs)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        out = self.net(self._input(obs))
        return out[0] if self.residual else out

    def hidden(self, obs: torch.Tensor, point: str = "post") -> list[torch.Tensor]:
        layers = self.net.hidden(self._input(obs), point)
        return [h[0] for h in layers] if self.residual else layers


def _body_kwargs(obs_dim, act_dim, hidden, network, width, blocks, obs_norm) -> dict:
    return {"obs_dim": obs_dim, "act_dim": act_dim, "hidden": list(hidden), "network": network, "width": width,
            "blocks": blocks, "obs_norm": bool(obs_norm)}


class DeterministicActor(nn.Module):
    """TD3 actor: tanh(body(s)), actions in [-1, 1]."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: tuple[int, ...], network: str = "mlp",
                 width: int = 128, blocks: int = 1, obs_norm: bool | nn.Module = False):
        super().__init__()
        self.init_kwargs = _body_kwargs(obs_dim, act_dim, hidden, network, width, blocks, obs_norm)
        self.net = Body(obs_dim, act_dim, hidden, network, width, blocks, obs_norm)

    @property
    def obs_norm(self) -> nn.Module | None:
        return self.net.obs_norm

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.net(obs))

    def hidden(self, obs: torch.Tensor, point: str = "post") -> list[torch.Tensor]:
        return self.net.hidden(obs, point)


class GaussianActor(nn.Module):
    """SAC actor: tanh-squashed Gaussian with state-dependent mean and clamped log-std."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: tuple[int, ...],
                 log_std_min: float = -20.0, log_std_max: float = 2.0, network: str = "mlp",
                 width: int = 128, blocks: int = 1, obs_norm: bool | nn.Module = False):
        super().__init__()
        self.init_kwargs = {**_body_kwargs(obs_dim, act_dim, hidden, network, width, blocks, obs_norm),
                            "log_std_min": log_std_min, "log_std_max": log_std_max}
        self.net = Body(obs_dim, 2 * act_dim, hidden, network, width, blocks, obs_norm)
        self.log_std_min, self.log_std_max = log_std_min, log_std_max

    @property
    def obs_norm(self) -> nn.Module | None:
        return self.net.obs_norm

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """The deterministic (mean) action tanh(mu), used for evaluation."""
        mean, _ = self.net(obs).chunk(2, dim=-1)
        return torch.tanh(mean)

    def hidden(self, obs: torch.Tensor, point: str = "post") -> list[torch.Tensor]:
        return self.net.hidden(obs, point)

    def sample(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Reparameterised action a = tanh(mu + sigma * eps) and its log-probability (B,)."""
        mean, log_std = self.net(obs).chunk(2, dim=-1)
        log_std = log_std.clamp(self.log_std_min, self.log_std_max)
        eps = torch.randn_like(mean)
        u = mean + log_std.exp() * eps
        # log N(u; mean, std) minus the tanh Jacobian log(1 - tanh(u)^2) = 2 (log 2 - u - softplus(-2u))
        log_prob = (-0.5 * eps.square() - log_std - LOG_SQRT_2PI
                    - 2.0 * (math.log(2.0) - u - F.softplus(-2.0 * u))).sum(-1)
        return torch.tanh(u), log_prob

