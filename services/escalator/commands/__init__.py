"""Sub-commands of the ``escalator`` CLI (one module each: ``register(parser)`` and ``run(args)``)."""

__all__: list[str] = []
