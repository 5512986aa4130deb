"""The run configuration: one dataclass, `Config`, made of the sections in sparserl.config.sections
(the streaming learners' in sparserl.config.streaming, populations' in sparserl.config.scale), that
drives the Python API, the CLI and YAML files.

Every field is a CLI flag (``total_steps`` -> ``--total-steps``) and a YAML key. Values are resolved
in this order, later wins (sparserl.config.resolve): dataclass defaults < the algorithm's defaults <
``--preset NAME`` < ``--config FILE`` < explicit flags. Names of algorithms, network bodies and sparsity methods are
checked against their registries, after the run's plugins are imported.
"""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from sparserl.algos import ALGORITHMS
from sparserl.architecture import BODIES
from sparserl.config.checks import choice_problems
from sparserl.config.coerce import coerce_fields
from sparserl.config.scale import Scale
from sparserl.config.sections import (
    DeterministicPolicy,
    Diagnostics,
    Evaluation,
    MaximumEntropy,
    Networks,
    Output,
    Sparsity,
    Training,
    ValueLearning,
)
from sparserl.config.streaming import Streaming
from sparserl.config.visual import PixelLearning, Pixels
from sparserl.errors import ConfigError, ConfigWarning
from sparserl.registry import load_plugins


def _warn_unread_settings(config: Config) -> None:
    """A ConfigWarning for each algorithm-specific setting the run's algorithm does not read but the
    config sets away from its default (e.g. policy_noise on a SAC run)."""
    reads = ALGORITHMS.get(config.algo).settings
    for section in (DeterministicPolicy, MaximumEntropy, Streaming, PixelLearning):
        for f in dataclasses.fields(section):
            if f.name not in reads and getattr(config, f.name) != f.default:
                readers = [n for n, cls in ALGORITHMS.items() if f.name in cls.settings]
                warnings.warn(f"{f.name} = {getattr(config, f.name)!r} has no effect on {config.algo} (it is read by "
                              f"{', '.join(readers) or 'no registered algorithm'})", ConfigWarning, stacklevel=3)


@dataclass
class Config(Output, Scale, Diagnostics, Evaluation, Sparsity, PixelLearning, Pixels, Streaming, ValueLearning,
             MaximumEntropy, DeterministicPolicy, Networks, Training):
    """Training settings: each is a flag here and a key in YAML config files and presets."""

    # --- checking ------------------------------------------------------------------------------
    def validate(self) -> Config:
        """Import the run's plugins, check every value and raise one ConfigError listing all problems;
        returns self."""
        load_plugins(self.plugins)
        problems = choice_problems(self)
        for section in reversed(type(self).__mro__[1:-1]):  # each section checks its own fields
            if "problems" in section.__dict__:
                problems += section.problems(self)
        if self.algo not in ALGORITHMS:
            problems.append(f"algo must be one of {', '.join(ALGORITHMS)}; got {self.algo!r}")
        if self.network not in BODIES:
            problems.append(f"network must be one of {', '.join(BODIES)}; got {self.network!r}")
        if not problems and self.algo in ALGORITHMS:
            _warn_unread_settings(self)
        if problems:
            if len(problems) == 1:
                raise ConfigError(f"invalid configuration: {problems[0]}")
            raise ConfigError("invalid configuration:\n  - " + "\n  - ".join(problems))
        return self

    # --- quantities derived from the settings (each written once) -------------------------------
    @property
    def learning_updates(self) -> int:
        """Gradient updates of the whole run: updates_per_step at every update_every-th step after
        start_steps."""
        return -(-max(0, self.total_steps - self.start_steps) // self.update_every) * self.updates_per_step

    @property
    def measure(self) -> str:
        """The metrics column a run is scored on: eval_return, or train_return (the mean return of the
        training episodes of each row) for a run that evaluates nothing (eval_episodes 0)."""
        return "eval_return" if self.eval_episodes else "train_return"

    @property
    def reevaluation_episodes(self) -> int:
        """Episodes a re-evaluation of the run's policy takes by default: eval_episodes, or 10 where
        the run evaluated nothing (eval_episodes 0)."""
        return self.eval_episodes or 10

    @property
    def evaluation_seed(self) -> int:
        """The evaluation environment's seed: eval_seed, or seed + 100 (sfujim/TD3)."""
        return self.eval_seed if self.eval_seed is not None else self.seed + 100

    def score_span(self, evaluations: int) -> int:
        """How many of `evaluations` evaluations the score averages: the last score_window of them."""
        return min(evaluations, self.score_window)

    def score(self, returns: list[float]) -> float:
        """The run's headline number: the mean of its last score_window evaluation returns (NaN if none)."""
        window = list(returns)[-self.score_window:]
        return float(np.mean(window)) if window else float("nan")

    # --- conversion ----------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain YAML-friendly dict (tuples become lists)."""
        return _plain(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "config") -> Config:
        """Build a Config from a mapping, with clear errors for unknown keys and wrong types."""
        return cls(**coerce_fields(data, source, cls))

    def replace(self, **changes: Any) -> Config:
        return dataclasses.replace(self, **changes)


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    return value
