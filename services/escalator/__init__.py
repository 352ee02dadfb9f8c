"""escalator: an event-driven SLA and escalation service.

The pure engine lives in :mod:`escalator.core`; everything else (Kafka worker, replay, importers, CLI) is an adapter
around it. The core's hot modules are compiled with mypyc at install time where a C compiler exists
(``escalator.build_info``).
"""

from .build_info import install_pure_python_switch

install_pure_python_switch()

__version__ = "0.1.0"
__all__ = ["__version__"]
