"""The sparsity engine on an ordinary supervised model: no RL, no Gymnasium.

A 3-layer MLP learns to imitate a random teacher network on synthetic data, once dense, once with
RigL at 90 % sparsity and once with 2:4 N:M (SR-STE). The engine attaches to the model and its
optimiser; the training loop is plain PyTorch.

    python examples/sparse_supervised.py
"""

from __future__ import annotations

import torch
from torch import nn

from sparserl.sparsity import Sparsifier, SparsityConfig, sparsity_report

STEPS = 1000


def make_data(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    teacher = nn.Sequential(nn.Linear(32, 64), nn.Tanh(), nn.Linear(64, 10))
    with torch.no_grad():
        for p in teacher.parameters():
            p.copy_(torch.randn(p.shape, generator=g) / p.shape[-1] ** 0.5)
        x = torch.randn(6000, 32, generator=g)
        y = teacher(x).argmax(1)
    return x[:5000], y[:5000], x[5000:], y[5000:]


def train(config: SparsityConfig | None, sparsity: float | None = None,
          seed: int = 0) -> tuple[float, Sparsifier | None]:
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(32, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    sparsifier = None
    if config is not None:
        sparsifier = Sparsifier(config, seed=seed)
        sparsifier.attach("model", model, optimizer, sparsity=sparsity, total_steps=STEPS)
    x, y, x_test, y_test = make_data()
    g = torch.Generator().manual_seed(seed)
    for _ in range(STEPS):
        batch = torch.randint(0, len(x), (128,), generator=g)
        loss = nn.functional.cross_entropy(model(x[batch]), y[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()  # the engine's hooks keep the masks
    with torch.no_grad():
        accuracy = (model(x_test).argmax(1) == y_test).float().mean().item()
    return accuracy, sparsifier


def main() -> None:
    torch.set_num_threads(1)
    runs = {
        "dense": (None, None),
        "rigl 90%": (SparsityConfig(method="rigl", update_interval=100), 0.9),
        "nm 2:4 (SR-STE)": (SparsityConfig(method="nm:2:4"), None),
    }
    for name, (config, level) in runs.items():
        accuracy, sparsifier = train(config, level)
        print(f"{name:<16} test accuracy {accuracy:.3f}")
        if sparsifier is not None:
            report = sparsity_report(sparsifier)
            print(f"{'':<16} density {report.density['model']:.3f}, training FLOPs {report.training_flops:.3f}x dense")


if __name__ == "__main__":
    main()
