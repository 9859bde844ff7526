"""fastbp's own exceptions. The CLI turns each into one line and an exit code."""


class FastBPError(Exception):
    """Base class. exit_code 1: a failure while running."""

    exit_code = 1


class UsageError(FastBPError):
    """Bad command line, config or argument: exit code 2."""

    exit_code = 2


class ConfigError(UsageError):
    """A config key is unknown, of the wrong type or out of range."""


class DataError(UsageError):
    """A data file is missing, corrupt or does not fit (names the file)."""


class CheckpointError(UsageError):
    """A checkpoint is truncated, foreign or disagrees with the config."""


class BackendError(UsageError):
    """The requested array backend cannot be used here."""


class FetchError(FastBPError):
    """Downloading or storing a data set failed (network, mirror, checksum, disk): exit code 1."""


class TrainingDiverged(FastBPError):
    """The loss or a gradient became non-finite."""


class WriteError(FastBPError):
    """Could not write an output file (disk full, read-only directory...)."""


class OutOfMemory(FastBPError):
    """The device ran out of memory (the message names the batch size and network)."""


class Interrupted(FastBPError):
    """Training was stopped by a signal after saving a checkpoint: exit code 130."""

    exit_code = 130


class TrainingUnhealthy(FastBPError):
    """A training-health check fired with train.on_unhealthy = "stop" (fastbp.train.health)."""


class HealthWarning(UserWarning):
    """A training-health check fired: unscaled inputs, dead or saturated units, vanishing or
    exploding gradients, no learning (fastbp.train.health). Filter it like scikit-learn's
    ConvergenceWarning: warnings.filterwarnings("ignore", category=fastbp.HealthWarning)."""
