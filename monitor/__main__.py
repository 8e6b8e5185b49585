"""``python -m monitor``: the serving commands (``finmon`` adds training's)."""

from monitor.cli import main

main()
