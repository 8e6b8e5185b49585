"""Alerting: detectors and rules, alert events, and delivery to risk teams.

Public surface (import from the modules):

* ``alerts.events``: ``AlertEvent``, ``Headline``
* ``alerts.detectors`` / ``alerts.rules``: the negative-share spike and volume surge detectors and
  the firing/resolve/cooldown rule around them (pure, clock-injected)
* ``alerts.notify``: ``WebhookNotifier`` (durable SQLite outbox, signed, retried)
* ``alerts.payload`` / ``alerts.signing``: Alertmanager-v4-compatible payloads, HMAC signatures
* ``alerts.receiver``: ``WebhookReceiver`` (``finmon webhook-receiver``)
* ``alerts.scenario`` / ``alerts.scoring``: simulated weeks and detection scoring for benchmarks
"""
