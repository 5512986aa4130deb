"""The training loop of a population: K agents in lockstep, each with its own environments and its
own run directory, their networks batched (sparserl.algos.base.Agent with config.population = K).

    RUN_DIR/                 the population: config.yaml (population K), run.json, checkpoints/
    RUN_DIR/seed-<s>/        agent s: config.yaml (the equivalent one-agent run's), run.json,
                             metrics.csv, tb/, policy.safetensors, as a single run writes them
                             (seed-<s>_actor-<a>_critic-<c>/ where agents have levels of their own)

Every step, each agent acts in its own environment; episodes end and restart per agent, each reset
with a seed derived from (the agent's seed, its episode index). Metrics rows, evaluations (all
agents at once, sparserl.runs.evaluate.evaluate_agents) and checkpoints fall on the same steps for
every agent.

Exact resume. The agents' episodes end at different steps, so there is no step at which every
environment is fresh; checkpoints are taken on schedule, mid-episode, and hold each agent's episode
so far (its index and the actions taken since its reset). A resumed population replays those
actions into fresh environments, which brings each back to its state (environments are
deterministic given their seed and actions; the replayed observation is checked against the
checkpoint's), and continues as if it had never stopped.
"""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path

import numpy as np
import torch

from sparserl.config import Config
from sparserl.envs import episode_seed
from sparserl.errors import CheckpointError
from sparserl.policy_file import POLICY_FILE
from sparserl.runs import files
from sparserl.runs.evaluate import evaluate_agents
from sparserl.runs.files import RunResult
from sparserl.runs.lock import run_lock
from sparserl.runs.publish import save_policy
from sparserl.runs.record import AgentLog
from sparserl.runs.trainer import Trainer


def agent_dirs(run_dir: Path, config: Config) -> list[Path]:
    """The agents' run directories of the population in `run_dir` (config.agent_names)."""
    return [Path(run_dir) / name for name in config.agent_names]


class PopulationTrainer(Trainer):
    """Runs a population (config.population > 1) to `total_steps`; see the module docstring."""

    def __init__(self, config: Config, run_dir: Path, checkpoint: dict | None = None, console=None):
        self.seeds = config.agent_seeds
        agents = len(self.seeds)
        self._returns, self._lengths = np.zeros(agents), np.zeros(agents, dtype=np.int64)
        self._actions: list[list[np.ndarray]] = [[] for _ in range(agents)]
        """Each agent's actions since its episode's reset (what a resumed run replays)."""
        self._replay: list[dict] | None = None
        super().__init__(config, run_dir, checkpoint, console)
        self.envs, self.eval_envs = self.parts.envs, self.parts.eval_envs

    def make_logs(self) -> list[AgentLog]:
        logs = []
        for k, path in enumerate(agent_dirs(self.run_dir, self.config)):
            path.mkdir(exist_ok=True)
            config = self.config.agent_config(k, path)
            files.write_config(path, config)
            logs.append(AgentLog(path, config, self.info, status={"population": str(self.run_dir)}))
        return logs

    def run(self) -> RunResult:
        with ExitStack() as locks:  # no other process writes an agent's directory meanwhile
            for log in self.logs:
                locks.enter_context(run_lock(log.run_dir))
            self._write_population_status("running")
            try:
                result = super().run()
            except BaseException as exc:
                self._write_population_status("failed", error=f"{type(exc).__name__}: {exc}")
                raise
            self._write_population_status("finished", score=result.score)
            return result

    def _write_population_status(self, status: str, **extra) -> None:
        files.write_status(self.run_dir, status, self.step, files.env_entry(self.info),
                           agents=[str(log.run_dir) for log in self.logs], **extra)

    # --- checkpoint state ---------------------------------------------------------------------
    def _agents_state(self) -> dict:
        episodes = [{"actions": torch.as_tensor(np.array(actions)), "return": float(ret), "length": int(length),
                     "obs": torch.as_tensor(np.array(obs))}
                    for actions, ret, length, obs in zip(self._actions, self._returns, self._lengths, self._obs)]
        return {"agents": [log.state_dict() for log in self.logs], "episodes": episodes}

    def _load_agents_state(self, trainer_state: dict) -> None:
        for log, state in zip(self.logs, trainer_state["agents"], strict=True):
            log.load_state_dict(state)
        self._replay = trainer_state["episodes"]

    # --- the loop -------------------------------------------------------------------------------
    def _reset_agent(self, k: int) -> np.ndarray:
        return self.envs[k].reset(seed=episode_seed(self.seeds[k], self.logs[k].episodes))[0]

    def _start_episodes(self) -> np.ndarray:
        """Each agent's observation: a fresh episode, or, resuming, its episode replayed to the checkpoint."""
        obs = [self._reset_agent(k) for k in range(len(self.seeds))]
        for k, episode in enumerate(self._replay or ()):
            actions = list(episode["actions"].numpy())
            for action in actions:
                obs[k] = self.envs[k].step(action)[0]
            if not np.array_equal(obs[k], episode["obs"].numpy()):
                raise CheckpointError(f"agent {self.seeds[k]}'s environment did not return to its checkpointed "
                                      f"state when its episode was replayed ({len(episode['actions'])} actions): "
                                      f"{self.config.env} is not deterministic given its seed and actions, so this "
                                      f"population cannot resume exactly")
            self._actions[k] = actions
            self._returns[k], self._lengths[k] = episode["return"], episode["length"]
        self._replay = None
        return np.stack(obs)

    def _train_loop(self) -> None:
        c, envs, learner, logs = self.config, self.envs, self.learner, self.logs
        act, observe = learner.act, learner.observe
        total = c.total_steps
        time_aware = c.time_feature  # the time is in the state: a time limit is a true terminal
        self._obs = obs = self._start_episodes()
        step = self.step
        while step < total:
            action, policy_action = act(obs, step)
            outcomes = [env.step(a) for env, a in zip(envs, action)]
            next_obs = np.stack([o[0] for o in outcomes])
            reward = np.array([o[1] for o in outcomes], dtype=np.float64)
            truncated = np.array([o[3] for o in outcomes])
            terminated = np.array([o[2] for o in outcomes]) | (truncated & time_aware)
            observe(obs, action, reward, next_obs, terminated, truncated, policy_action, step)
            step += 1
            self.step = step
            self._returns += reward
            self._lengths += 1
            for k in range(len(envs)):
                self._actions[k].append(np.array(action[k]))
            self._obs = obs = next_obs
            for k in np.flatnonzero(terminated | truncated):
                logs[k].end_episode(float(self._returns[k]), int(self._lengths[k]), step)
                self._returns[k], self._lengths[k], self._actions[k] = 0.0, 0, []
                obs[k] = self._reset_agent(k)
            if self._row_if_due(step):
                break
            if step >= self.next_checkpoint:
                self._checkpoint()
                self.next_checkpoint += c.checkpoint_every
            self._progress(step)

    # --- rows, policies, results ------------------------------------------------------------------
    STOP_LINE = "every agent's {what} has reached {value:g}: stopping at step {step:,}"

    def _reached(self, value: float) -> bool:
        """Every agent has measured at least `value` at some row (stop_at_return)."""
        return all(any(m >= value for _, m in log.evaluations) for log in self.logs)

    def _evaluate(self) -> list:
        if not self.config.eval_episodes:
            return [None] * len(self.logs)
        return evaluate_agents(self.learner.act_deterministic, self.eval_envs, self.config.eval_episodes,
                               [log.config.evaluation_seed for log in self.logs])

    def _agent_stats(self) -> list[dict]:
        return self.learner.pop_agent_stats()

    def _save_policies(self) -> None:
        for k, log in enumerate(self.logs):
            save_policy(self, log.run_dir / POLICY_FILE, policy=self.agent.agent_policy(k), config=log.config)

    def result(self, results: list[RunResult] | None = None) -> RunResult:
        """The population's result: the mean of its agents' scores, each agent's result in `agents`."""
        results = results or self._results()
        return files.population_result(self.run_dir, results, results[0].sparsity)
