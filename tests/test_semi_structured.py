"""--execution semi_structured on the CPU: its refusals, and its autograd path (compressed forward,
dense input and weight gradients) giving the masked dense updates, with the compression replaced by
the identity where there is no GPU (gpu_check.sh runs PyTorch's 2:4 kernels themselves)."""

from __future__ import annotations

import pytest
import torch

from sparserl.algos.draws import Draws
from sparserl.config import Config
from sparserl.envs import EnvInfo
from sparserl.errors import ConfigError
from sparserl.replay import Batch
from sparserl.runs.build import build_agent
from sparserl.sparsity.semi_structured import SemiStructuredExecutor, problems

INFO = EnvInfo("test", obs_dim=8, act_dim=4, max_episode_steps=None)


@pytest.mark.parametrize("changes, words", [
    ({"sparsity": "rigl", "device": "cuda"}, "it needs sparsity nm:2:4, got rigl"),
    ({"sparsity": "nm:2:4", "device": "cpu"}, "device cpu was asked for"),
    ({"sparsity": "nm:2:4", "device": "auto"}, "needs a CUDA GPU with 2:4 sparse tensor cores"),
])
def test_semi_structured_is_refused_without_2_4_or_a_capable_gpu(changes, words):
    if torch.cuda.is_available() and changes["device"] != "cpu":
        pytest.skip("this machine has a GPU: the refusal is for machines without one")
    with pytest.raises(ConfigError, match=words):
        Config(execution="semi_structured", **changes).validate()


def test_a_capable_gpu_with_2_4_passes_the_checks():
    assert problems("nm:2:4", "cuda", gpu=True) == []
    assert problems("nm:2:4", "auto", gpu=True) == []
    assert len(problems("nm:1:4", "cuda", gpu=False)) == 2


def batch(generator: torch.Generator) -> Batch:
    def draw(*shape):
        return torch.randn(32, *shape, generator=generator, dtype=torch.float64)

    zeros = torch.zeros(32, dtype=torch.float64)
    return Batch(draw(INFO.obs_dim), draw(INFO.act_dim).clamp(-1, 1), draw(), draw(INFO.obs_dim),
                 draw(INFO.act_dim).clamp(-1, 1), zeros, zeros)


@pytest.mark.parametrize("gradient", ["masked", "srste"])
def test_the_semi_structured_path_trains_as_masked_dense_products(gradient):
    config = Config(algo="td3", hidden=(32, 32), seed=3, total_steps=1000, start_steps=0,
                    sparsity={"method": "nm:2:4", "nm_gradient": gradient})
    agents = []
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # (equal to float64 rounding)
    try:
        for _ in range(2):
            torch.manual_seed(0)
            agents.append(build_agent(config, INFO)[0])
    finally:
        torch.set_default_dtype(default)
    dense, semi = agents
    for agent in agents:  # (a single agent draws its noise from the global generator: give each the same stream)
        agent.draws = Draws([5], population=False)
    assert semi.sparsifier.execute_sparse("semi_structured") > 0
    executors = [m.executor for net in semi.networks.values() for m in net.modules()
                 if isinstance(getattr(m, "executor", None), SemiStructuredExecutor)]
    compressed = []

    def compress(weight):  # the identity, checking what the kernel would be given: a 2:4 pattern
        groups = weight.reshape(weight.shape[0], -1, 4)
        assert bool(((groups != 0).sum(-1) <= 2).all()), "a weight row is not 2:4"
        compressed.append(weight.shape)
        return weight

    for executor in executors:
        executor.compress = compress
    executors[0].compress = lambda weight: (_ for _ in ()).throw(RuntimeError("shape not supported"))
    generator = torch.Generator().manual_seed(1)
    for _ in range(30):
        data = batch(generator)
        dense.update(data)
        semi.update(data)
    assert compressed and executors[0].dense  # the refused layer fell back to dense products
    for name, network in dense.networks.items():
        for key, tensor in network.state_dict().items():
            torch.testing.assert_close(semi.networks[name].state_dict()[key], tensor, rtol=1e-9, atol=1e-11,
                                       msg=f"{name}.{key}")
