"""DrQ-v2's update against independent computations: the n-step window sums, the TD target with its
clipped noise, which losses reach the encoder, the critic's Polyak step and the std schedule."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sparserl.algos.drqv2 import DrQV2
from sparserl.config import Config
from sparserl.envs import EnvInfo
from sparserl.nets.visual import linear_schedule
from sparserl.replay import FrameReplay

SIZE, STACK = 16, 3
INFO = EnvInfo("dm_control/cartpole-swingup-v0", 3 * STACK * SIZE * SIZE, 1, 500, obs_shape=(3 * STACK, SIZE, SIZE))


def agent_and_replay(seed: int = 0, **changes):
    values = dict(hidden=(32, 32), feature_dim=8, nstep=3, batch_size=16, update_every=2, start_steps=100,
                  actor_lr=1e-4, critic_lr=1e-4, tau=0.01, gamma=0.9, std_duration=1000)
    values.update(changes)
    torch.manual_seed(seed)
    agent = DrQV2(INFO, Config(**values))
    replay = FrameReplay((3, SIZE, SIZE), STACK, 1, 300)
    rng = np.random.default_rng(seed)
    obs = np.tile(rng.integers(0, 256, (3, SIZE, SIZE), dtype=np.uint8), (STACK, 1, 1))
    for t in range(200):  # episodes of 23 decisions, alternately cut by a terminal and a time limit
        action, mean = agent.act(obs)
        frame = rng.integers(0, 256, (3, SIZE, SIZE), dtype=np.uint8)
        following = np.concatenate([obs[3:], frame])
        end = t % 23 == 22
        replay.add(obs, action, float(rng.normal()), following, end and t % 46 == 22, end and t % 46 != 22, mean)
        obs = np.tile(frame, (STACK, 1, 1)) if end else following
    return agent, replay


def test_window_sums_and_target_equal_an_independent_computation():
    agent, replay = agent_and_replay()
    batch = replay.sample(64, 3)
    action, reward_sum, discount = agent.window(batch)
    for b in range(64):
        total, factor = 0.0, 1.0
        for k in range(3):
            total += factor * float(batch.reward[b, k])
            factor *= 0.9
            if batch.terminated[b, k] or batch.truncated[b, k]:
                break
        assert float(reward_sum[b]) == pytest.approx(total, rel=1e-5, abs=1e-6)
        ended_by_terminal = bool(batch.terminated[b, k])
        assert float(discount[b]) == pytest.approx(0.0 if ended_by_terminal else factor, rel=1e-6)
        assert k == int(batch.last[b])
    assert torch.equal(action, batch.action[:, 0])
    next_h = agent.encoder(batch.next_obs.float())
    torch.manual_seed(3)
    target = agent.td_target(next_h, reward_sum, discount)
    torch.manual_seed(3)  # the same noise draw, by hand: clip(std N(0, 1), -0.3, 0.3), then the action bounds
    with torch.no_grad():
        mean = agent.actor(next_h)
        noise = (torch.randn(mean.shape) * agent.std()).clamp(-0.3, 0.3)
        q = agent.critic_target(next_h, (mean + noise).clamp(-1 + 1e-6, 1 - 1e-6))
    torch.testing.assert_close(target, reward_sum + discount * q.min(dim=0).values)
    assert agent.std() == pytest.approx(linear_schedule(1.0, 0.1, 1000, 100))  # no update yet: the warm-up's end


def test_the_critic_trains_the_encoder_and_the_actor_does_not():
    agent, replay = agent_and_replay()
    batch = replay.sample(16, 3)
    critic_loss, _, h = agent._critic_loss(batch)
    critic_loss.backward(retain_graph=True)
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in agent.encoder.parameters())
    agent.encoder.zero_grad(set_to_none=True)
    agent.actor.zero_grad(set_to_none=True)
    agent.actor_objective(h).mean().backward()
    assert all(p.grad is None for p in agent.encoder.parameters())  # sg(h): no gradient into the encoder
    assert all(p.grad is not None for p in agent.actor.parameters())


def test_an_update_steps_all_three_networks_and_averages_the_critic():
    agent, replay = agent_and_replay()
    before = {name: [p.detach().clone() for p in agent.networks[name].parameters()]
              for name in ("encoder", "actor", "critic", "critic_target")}
    agent.update(replay.sample(16, 3))
    for name in ("encoder", "actor", "critic"):
        assert any(not torch.equal(a, p) for a, p in zip(before[name], agent.networks[name].parameters())), name
    for old, new, online in zip(before["critic_target"], agent.critic_target.parameters(), agent.critic.parameters()):
        torch.testing.assert_close(new, 0.99 * old + 0.01 * online)  # tau 0.01, the critic only
    stats = agent.pop_stats()
    assert set(stats) == {"critic_loss", "q", "actor_loss", "std"} and np.isfinite(list(stats.values())).all()


def test_the_std_follows_the_decisions_behind_the_updates():
    agent, replay = agent_and_replay()
    for _ in range(30):
        agent.update(replay.sample(16, 3))
    # 30 updates, one every 2 decisions after 100 random ones: decision 160 of the 1000-step schedule
    assert agent.std() == pytest.approx(linear_schedule(1.0, 0.1, 1000, 160))
    action, mean = agent.act(np.zeros(INFO.obs_shape, dtype=np.uint8))
    assert action.shape == mean.shape == (1,) and np.all(np.abs(action) < 1)


def test_a_pixel_policy_file_holds_the_encoder_and_refuses_other_shapes(tmp_path):
    """The exported policy runs frames through its own convolutions and trunk as the agent does
    (uint8 or float frames, one or a batch), stores a 90 %-sparse encoder and trunk compactly, and
    refuses an observation of another shape by naming the one it takes."""
    from sparserl import load_policy
    from sparserl.errors import PolicyError
    from sparserl.export import export_actor
    from sparserl.runs.build import build_agent

    config = Config(algo="drqv2", pixels=True, pixel_size=SIZE, frame_stack=STACK, hidden=(32, 32), feature_dim=8,
                    diagnostics_every=0, sparsity={"method": "static", "actor_sparsity": 0.9, "critic_sparsity": 0.9,
                              "distribution": "uniform"}).validate()
    torch.manual_seed(0)
    agent, _ = build_agent(config, INFO)
    frames = np.random.default_rng(1).integers(0, 256, (5, *INFO.obs_shape), dtype=np.uint8)
    with torch.no_grad():
        expected = agent.policy(torch.as_tensor(frames)).numpy()
    header = export_actor(agent.policy, tmp_path / "policy.safetensors", source={"algo": "drqv2"})
    assert header["obs_shape"] == list(INFO.obs_shape) and header["architecture"]["encoder"]["strides"] == [2, 1, 1, 1]
    assert {"encoder.0", "encoder.3", "trunk"} <= header["layers"].keys()
    assert all(header["layers"][n]["storage"] != "dense" for n in ("encoder.1", "trunk"))  # 10 % kept: CSR or N:M
    policy = load_policy(tmp_path / "policy.safetensors")
    np.testing.assert_allclose(policy.act(frames), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(policy.act(frames[0].astype(np.float32)), expected[0], rtol=1e-5, atol=1e-5)
    for wrong in (frames[0, :3], frames.reshape(5, -1)):
        with pytest.raises(PolicyError, match=r"observation must have shape \(9, 16, 16\) or \(batch, 9, 16, 16\)"):
            policy.act(wrong)


def test_a_pixel_run_and_its_policy_file_evaluate_alike(tmp_path):
    """`eval RUN` and `eval --policy RUN/policy.safetensors` rebuild the pixel environment the run
    trained on (task, frame size, stack, action repeat) and score the same episodes; the exported
    copy is the same policy."""
    from sparserl import load_policy
    from sparserl.cli import main
    from sparserl.config import resolve_config
    from sparserl.runs.api import train
    from sparserl.runs.eval_run import evaluate_policy_file, evaluate_run

    config = resolve_config(algo="drqv2", env="dm_control/cartpole-swingup-v0", pixels=True, pixel_size=SIZE,
                            action_repeat=8, hidden=(32, 32), feature_dim=8, batch_size=16, total_steps=300,
                            start_steps=200, buffer_size=300, eval_every=300, eval_episodes=1, progress=False,
                            tensorboard=False, sparsity={"method": "static", "encoder_sparsity": 0.5},
                            run_dir=str(tmp_path / "run"))
    run_dir = train(config).run_dir
    by_run, _ = evaluate_run(run_dir, backend="dense")
    by_file, source = evaluate_policy_file(run_dir / "policy.safetensors", backend="auto")
    assert source["pixels"]["size"] == SIZE and by_file.returns == pytest.approx(by_run.returns, rel=1e-4)
    assert main(["export", str(run_dir), "--out", str(tmp_path / "copy.safetensors")]) == 0
    assert load_policy(tmp_path / "copy.safetensors").obs_shape == (9, SIZE, SIZE)
    assert main(["eval", "--policy", str(tmp_path / "copy.safetensors"), "--episodes", "1"]) == 0
