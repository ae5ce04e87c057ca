"""The exceptions tinygpt raises on bad input.

Every error a user can cause derives from ``TinyGPTError`` so the command line
can print it as one clear line (no traceback). Messages name the problem and
the fix.
"""


class TinyGPTError(Exception):
    """Base class: a problem with the user's input or environment, not a bug."""


class BackendError(TinyGPTError):
    """The requested array library or device is unknown or unavailable."""


class ShapeError(TinyGPTError, ValueError):
    """An array has the wrong shape or dtype for the operation."""


class TokenizerError(TinyGPTError, ValueError):
    """Text cannot be encoded (unknown character) or ids cannot be decoded."""


class TokenIdError(TinyGPTError, IndexError):
    """A token id lies outside the vocabulary (negative ids included: they never wrap around)."""


class CorpusError(TinyGPTError):
    """A corpus is missing, empty, too short, or not valid UTF-8."""


class CheckpointError(TinyGPTError):
    """A checkpoint is missing, corrupt, or does not match the model."""


class ConfigError(TinyGPTError, ValueError):
    """A configuration value is out of its allowed range."""


class NumericalError(TinyGPTError, FloatingPointError):
    """Training produced a non-finite loss or gradient."""


class MissingExtraError(TinyGPTError, ImportError):
    """An optional package (matplotlib, scikit-learn, ...) is needed but not installed."""


class DistributedError(TinyGPTError):
    """The processes of a data-parallel run disagree, lost a peer, or were launched wrongly."""
