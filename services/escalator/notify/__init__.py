"""``escalator notify``: the reference notification relay. It consumes escalator's notification requests (and
escalations, for PagerDuty), routes them through a routing file and a people/teams directory to Slack, signed
webhooks, e-mail and PagerDuty, with retries, circuit breakers, a delivery dead-letter topic, de-duplication,
digests, quiet hours and staleness suppression. See docs/notify.md.
"""

__all__: list[str] = []
