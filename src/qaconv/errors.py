"""The project's user-facing error type: the CLI prints its message on one line, without a traceback."""


class QAConvError(ValueError):
    """A problem with the user's input (file, key, option or data) that the message explains."""
