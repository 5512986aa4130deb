"""Errors sparserl raises for things a user can fix; the CLI prints their message without a traceback."""


class SparserlError(Exception):
    """Base class: a problem with the user's input or run, explained in the message."""


class ConfigError(SparserlError, ValueError):
    """A configuration value, YAML file or preset is invalid."""


class EnvError(SparserlError, ValueError):
    """An environment id is unknown or an environment is unsuitable."""


class CheckpointError(SparserlError):
    """A checkpoint or run directory is missing, corrupt or incompatible."""


class TrainingDiverged(SparserlError):
    """A loss or parameter became NaN or infinite; the last good checkpoint is kept."""


class PolicyError(SparserlError, ValueError):
    """A policy file is missing, corrupt or of another version, or `act` got a malformed observation."""


class RunBusy(SparserlError):
    """A run directory is held by another live trainer (sparserl.runs.lock)."""


class SparserlWarning(UserWarning):
    """Base class of sparserl's warnings; the CLI prints them as one line."""


class ConfigWarning(SparserlWarning):
    """A setting has no effect in this configuration (a TD3 setting on a SAC run, say)."""


class PolicyWarning(SparserlWarning):
    """A policy file loads, but something about it deserves attention (no checksum)."""
