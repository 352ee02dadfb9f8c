"""escalator: an event-driven SLA and escalation service.

The pure engine lives in :mod:`escalator.core`; everything else (Kafka worker, replay, importers, CLI) is an adapter
around it.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
