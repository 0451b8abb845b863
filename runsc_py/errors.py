"""The one exception type the CLI turns into a one-line error and a non-zero exit."""


class UserError(Exception):
    """Bad input or a failed operation; str() is the whole message for the user."""
