"""``finmon demo``: synthetic news (``generator``), a replay producer, the demo model, the run."""
