"""The user-facing error: one clear line (what, where, how to fix), no traceback."""


class DualgenError(Exception):
    """A problem with the user's input or settings. ``str(err)`` is the one line shown to the user."""
