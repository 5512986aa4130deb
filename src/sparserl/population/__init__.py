"""Populations: K independent agents trained in lockstep in one process, their networks batched as
ensemble members (sparserl.algos.base.Agent with config.population = K). members.py maps agent k's
tensors to and from a single agent's."""

from sparserl.population.members import copy_member, member_state, member_view

__all__ = ["copy_member", "member_state", "member_view"]
