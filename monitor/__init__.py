"""FinMon's streaming side: ingest, classify, aggregate, metrics, the daemon and the CLI.

The tree follows the data flow: ``ingest`` (Kafka in/out, the classify step and worker) ->
``classify`` (model, engine, batching) -> ``aggregate`` (windows, detectors' host, state) ->
``metrics``. ``settings`` and ``errors`` are shared; ``daemon`` wires the roles; ``demo`` runs
the whole system on one machine. Submodules are imported explicitly (nothing eager here, so
``import monitor`` does not load torch).
"""
