"""The root of every error meant for the user, and the cost model's own error type.

`UserError` lives in the lowest package of the one-way flow (costmodel <- nets <- dse) so that every package's
bad-input errors can derive from it; the CLI catches it in exactly one place. Anything else is a bug.
"""


class UserError(ValueError):
    """Bad input from the user (a file, spec key, option or argument); the message names it and says what is wrong."""


class CostModelError(UserError):
    """A bad technology file, accelerator, layer list or argument; the message names the field and the values."""
