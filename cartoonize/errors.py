"""The one exception type whose message is shown to a user as a one-line error, its warning, and
the interrupt that SIGTERM and SIGHUP become."""


class CartoonizeError(Exception):
    """A problem the user can fix; its message says how. The CLI prints it and exits 1."""


class CartoonizeWarning(UserWarning):
    """Something the user asked for works but is a poor choice here (bf16 on a CPU without native
    bf16: correct, and slower than fp32). The CLI prints it as one yellow line."""


class Terminated(KeyboardInterrupt):
    """SIGTERM (a `kill`, a job scheduler, a container stopping) or SIGHUP (the terminal closed),
    raised in the main thread as an interrupt so that it takes Ctrl-C's way out: workers stopped, a
    partial output dropped, every finished output kept. The CLI then exits 128 + the signal's
    number (143, 129), as a process ended by it does."""

    def __init__(self, signum: int = 15) -> None:
        import signal

        self.signum = signum
        self.name = signal.Signals(signum).name
        super().__init__(self.name)
