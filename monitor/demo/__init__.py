"""``finmon demo``: synthetic news (``generator``), a replay producer, the run (the demo model is
trained by ``pipelines.demo``)."""
