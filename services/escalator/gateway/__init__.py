"""``escalator gateway``: ticketing webhooks and CloudEvents over HTTP in, validated v1 ticket events out (Kafka).

``app.create_gateway`` builds the aiohttp application from one frozen ``Settings``, a delivery seam (the Kafka
producer; a fake in unit tests), a Prometheus registry and a time source. The vendor mappers (``mapping``) and the
mapping file (``mapfile``) are pure; ``signatures`` and ``limits`` guard the door. See docs/gateway.md.
"""

__all__: list[str] = []
