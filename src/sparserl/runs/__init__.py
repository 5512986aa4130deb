"""Runs: the training loop, run directories, checkpoints, metrics and evaluation."""
