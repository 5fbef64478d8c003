"""The one exception type whose message is shown to a user as a one-line error."""


class CartoonizeError(Exception):
    """A problem the user can fix; its message says how. The CLI prints it and exits 1."""
