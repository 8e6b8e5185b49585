"""Serving the model. Public surface (import from the modules):

* ``monitor.classify.protocol``: ``Classifier`` (the protocol; imports no torch)
* ``monitor.classify.engine``: ``TorchClassifier``, ``pick_device``
* ``monitor.classify.model``: the export format, ``build_model``, ``save_model``, ``load_model``
* ``monitor.classify.owner``: ``ModelOwner`` (the thread that owns the model), ``Job``
* ``monitor.classify.batcher``: ``BatchPolicy``, ``MicroBatcher``, ``split_batches``
* ``monitor.classify.text``: ``normalise`` (shared with training), ``dedup_key``
* ``monitor.classify.base``: ``resolve_base_model`` (the offline MiniLM weights)
"""
