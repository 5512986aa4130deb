"""Algorithms: TD3 and SAC on one shared agent base."""

from sparserl.algos.base import Agent
from sparserl.algos.sac import SAC
from sparserl.algos.td3 import TD3
from sparserl.config import Config
from sparserl.envs import EnvInfo

ALGORITHMS: dict[str, type[Agent]] = {"td3": TD3, "sac": SAC}


def make_agent(info: EnvInfo, config: Config) -> Agent:
    """The agent named by config.algo for an environment described by `info`."""
    return ALGORITHMS[config.algo](info, config)


__all__ = ["ALGORITHMS", "SAC", "TD3", "Agent", "make_agent"]
