"""The one exception type whose message is shown to a user as a one-line error."""


class CartoonizeError(Exception):
    """A problem the user can fix; its message says how. The CLI prints it and exits 1."""


class CartoonizeWarning(UserWarning):
    """Something the user asked for works but is a poor choice here (bf16 on a CPU without native
    bf16: correct, and slower than fp32). The CLI prints it as one yellow line."""
