"""Real learning: TD3 and SAC solve Pendulum-v1 within 20 000 steps (1 000 random start steps).

An untrained policy scores about -1500; -300 needs a policy that swings up and balances.
"""

from __future__ import annotations

import pytest

from sparserl.config import Config, load_preset
from sparserl.runs.trainer import train


@pytest.mark.slow
@pytest.mark.parametrize("algo", ["td3", "sac"])
def test_pendulum_reaches_minus_300(tmp_path, algo):
    values = load_preset(f"pendulum-{algo}")
    config = Config(**values).replace(eval_every=2500, threads=1, progress=False, tensorboard=False,
                                      run_dir=str(tmp_path / algo))
    assert config.total_steps == 20_000 and config.start_steps == 1_000 and config.seed == 0
    result = train(config)
    steps = [s for s, _ in result.evaluations]
    best = max(m for s, m in result.evaluations if s <= 20_000)
    assert steps[-1] == 20_000
    assert result.evaluations[0][1] < -900  # it really started from scratch
    assert best >= -300, f"{algo}: best evaluation {best:.1f} over {result.evaluations}"
