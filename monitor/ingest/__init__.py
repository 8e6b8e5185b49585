"""Kafka in and out. Public surface (import from the modules):

* ``monitor.ingest.classify_worker``: ``ClassifyWorker`` (the classify role)
* ``monitor.ingest.classify_step``: ``classify_records``, ``decode_record``, ``encode_result``
* ``monitor.ingest.offsets``: ``OffsetTracker`` (commit only the acknowledged prefix)
* ``monitor.ingest.kafka_io``: client factories from settings, ``ensure_topics``
"""
