"""The single error type of the cost model."""


class CostModelError(ValueError):
    """A bad technology file, accelerator, layer list or argument; the message names the field and the values."""
