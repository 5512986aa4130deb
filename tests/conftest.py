"""Shared test helpers. Tests run two at a time (pytest-xdist), each with one torch thread.

SPARSERL_TEST_PLUGINS (paths or module names, separated by the OS path separator) names plugins to
import before collection, so the conformance suites also run over the entries they register."""

from __future__ import annotations

import os

import pytest
import torch

from sparserl.config import Config
from sparserl.registry import load_plugins

os.environ.setdefault("MUJOCO_GL", "egl")  # headless: state runs never render, pixel runs need it
torch.set_num_threads(1)
load_plugins([p for p in os.environ.get("SPARSERL_TEST_PLUGINS", "").split(os.pathsep) if p])


def pytest_collection_modifyitems(items):
    """The slow tests first, so that pytest-xdist hands them out while short ones remain to fill the
    gaps (the order within each kind is unchanged)."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


def small_config(tmp_path, **changes) -> Config:
    """A fast Pendulum run: small networks and intervals, one thread, no progress output."""
    values = dict(env="Pendulum-v1", total_steps=600, start_steps=200, batch_size=32, buffer_size=10_000,
                  hidden=(32, 32), eval_every=200, eval_episodes=2, checkpoint_every=200, threads=1,
                  progress=False, tensorboard=False, run_dir=str(tmp_path / "run"))
    values.update(changes)
    return Config(**values)


@pytest.fixture
def make_config(tmp_path):
    def make(**changes) -> Config:
        return small_config(tmp_path, **changes)

    return make
