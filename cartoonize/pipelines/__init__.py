"""The jobs the CLI runs, each a frozen job dataclass and one function: `video`, `image`, `webcam`,
and `build` (build-engine: a builder, then the parity gate). They take a runner, never choose one."""
