"""The worker process around the batched stream processor (``escalator.stream``): the app factory and HTTP API
(``app``), metrics, logging, the clock seam, topic specs and wire helpers.

``create_service(settings, clock, registry)`` builds a worker; ``escalator worker`` runs it.
"""

__all__: list[str] = []
