"""The ``finmon`` command: assembles the sub-commands of the serving side (``monitor``), the
alerting side (``alerts``) and training (``pipelines``), none of which imports another's CLI.

``finmon demo`` lives here because it needs both sides: a model from ``pipelines.demo`` and the
running system from ``monitor.demo``.
"""
