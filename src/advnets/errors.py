"""The errors advnets reports to a user as a plain message (no traceback) when a stage fails."""


class AdvnetsError(Exception):
    """A problem with the user's input, data or environment, explained by its message."""
