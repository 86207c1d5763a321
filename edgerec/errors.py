"""The exceptions a user can act on.

Every failure caused by input (a file, a flag, a run directory) raises a subclass of
`EdgerecError` whose message says what was received and what was expected. The CLI catches
`EdgerecError` once, prints its message as one line on stderr and exits with code 2; anything else
is a bug and keeps its traceback.
"""


class EdgerecError(Exception):
    """Base class: a problem with what the user gave us, not a bug in edgerec."""


class DataError(EdgerecError):
    """A data file is missing, malformed, or leaves nothing after filtering."""


class ConfigError(EdgerecError):
    """A configuration value or preset is invalid."""


class RunDirError(EdgerecError):
    """A run directory is missing, incomplete, or does not belong with the other inputs."""


class DownloadError(EdgerecError):
    """A dataset archive could not be fetched or failed its checksum."""


class ExportError(EdgerecError):
    """An export could not be written, or a bundle is missing or corrupt."""


class ValidationError(ExportError):
    """An exported model does not compute what the trained model computes.

    Carries every failed check, so that one run shows all of them.
    """

    def __init__(self, failures: list[str]):
        self.failures = list(failures)
        super().__init__("validation failed: " + "; ".join(self.failures))


class BenchError(EdgerecError):
    """A benchmark could not run as asked."""


class TargetError(EdgerecError):
    """A device target's environment cannot be built or run here."""


class SweepError(EdgerecError):
    """A sweep cannot run as asked: its directory is in use, a worker died, Ray is missing.

    A single cell's failure is recorded in the sweep, not raised.
    """
