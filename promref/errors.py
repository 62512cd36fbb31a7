"""The promref exception hierarchy.

Every problem promref detects in its inputs raises a subclass of
:class:`PromrefError`, with a message that names the file, layer or field at
fault.  Callers can catch ``PromrefError`` to handle all of them.
"""


class PromrefError(ValueError):
    """Base class of every error promref raises on bad input (a ValueError)."""


class WeightsFormatError(PromrefError):
    """A weights file is unreadable, incomplete, inconsistent or unsafe."""


class OverflowRiskError(WeightsFormatError):
    """A layer's weights could overflow an int32 accumulator for some int8 input."""


class ImageError(PromrefError):
    """An image cannot be read or converted to an RGB uint8 array."""


class ShapeError(PromrefError):
    """An array handed to promref has the wrong shape or dtype."""


class CheckpointError(PromrefError):
    """A training checkpoint is unreadable, inconsistent, non-finite or from another configuration."""


class TrainArgumentError(PromrefError):
    """A training argument or configuration value is out of range or unknown."""
