"""One error type for bad input, so every command can end with one clear line instead of a traceback."""


class UsageError(Exception):
    """Bad input from the user: printed as one line on stderr, exit status 2."""
