"""``python -m finmon`` is the ``finmon`` command."""

from finmon.cli import main

main()
