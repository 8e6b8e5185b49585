"""Event-time windows per topic, ticker and overall, with the detectors run on closed windows.

Public surface (import from the modules; this package imports nothing eagerly, because the
detectors in ``alerts`` import the window types from here):

* ``monitor.aggregate.engine``: ``Aggregator``, ``from_settings``
* ``monitor.aggregate.store``: ``StateStore``, ``MemoryStateStore``, ``SqliteStateStore``
* ``monitor.aggregate.windows``: ``WindowStats``, ``window_start``, ``window_end``
* ``monitor.aggregate.backtest``: ``run_backtest``, ``read_records``
"""
