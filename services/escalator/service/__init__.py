"""The Kafka service: a faust-streaming app (thin adapters) around the pure core.

``create_app(settings, clock, registry)`` builds the app; ``escalator worker`` runs it.
"""
