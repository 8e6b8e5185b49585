"""``python -m monitor`` is the ``finmon`` command."""

from monitor.cli import main

main()
