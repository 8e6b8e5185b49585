"""The source role: feeds (RSS / RDF / Atom), a push endpoint and a drop folder -> news.raw."""

from monitor.sources.status import SourceBoard, SourceState
from monitor.sources.worker import SourceRole

__all__ = ["SourceBoard", "SourceRole", "SourceState"]
