"""Which companies a text names: cashtags, exchange tags and a name -> ticker dictionary.

Pure functions and one frozen dictionary object; shared by the classify step (entity-level
sentiment, :mod:`monitor.classify.entities`) and the feed sources (ticker extraction).

- cashtags: ``$TSLA`` (1 to 6 letters, optionally ``.`` and a class letter: ``$BRK.B``);
- exchange tags: ``(NASDAQ:TLRY)``, ``NYSE: GE``, ``(LSE:VOD)``;
- names: every name and alias of a :class:`TickerDictionary`, matched case-insensitively on word
  boundaries (``Apple`` and ``Apple Inc.`` -> ``AAPL``), longest first, never overlapping.

A mention carries the text as written (``name``), its character span and the ticker when known.
The dictionary file (YAML or JSON) maps a ticker to its names, the first being the display name::

    AAPL: [Apple, Apple Inc., iPhone maker]
    TSLA: [Tesla, Tesla Motors]
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from monitor.errors import FinMonError

EXCHANGES: tuple[str, ...] = (
    "NASDAQ",
    "NYSE",
    "NYSEAMERICAN",
    "AMEX",
    "ARCA",
    "OTC",
    "OTCQX",
    "OTCQB",
    "TSX",
    "TSXV",
    "CSE",
    "LSE",
    "ASX",
    "NSE",
    "BSE",
    "HKEX",
    "XETRA",
    "EURONEXT",
)
_SYMBOL = r"[A-Za-z]{1,6}(?:\.[A-Za-z]{1,2})?"
_CASHTAG = re.compile(rf"(?<![\w$])\$({_SYMBOL})(?![\w])")
_EXCHANGE = re.compile(rf"\(?\b(?:{'|'.join(EXCHANGES)})\s*:\s*({_SYMBOL})\b\)?", re.IGNORECASE)


class TickerDictionaryError(FinMonError):
    """A ticker dictionary file is unreadable or malformed. Fix the file it names."""

    def __init__(self, path: str, problem: str) -> None:
        self.path, self.problem = path, problem
        super().__init__(f"ticker dictionary {path}: {problem}")


@dataclass(frozen=True, slots=True)
class Mention:
    """One entity mention: the text as written, its span ``[start, end)``, the ticker if known."""

    name: str
    start: int
    end: int
    ticker: str | None = None


def normalise_ticker(symbol: str) -> str:
    """``$brk.b`` -> ``BRK.B``."""
    return symbol.strip().lstrip("$").upper()


@dataclass(frozen=True)
class TickerDictionary:
    """Names and aliases -> ticker. Build with :meth:`from_mapping` or :meth:`load`."""

    names: Mapping[str, str] = field(default_factory=dict)  # lower-cased alias -> ticker
    display: Mapping[str, str] = field(default_factory=dict)  # ticker -> display name
    _pattern: re.Pattern[str] | None = field(default=None, repr=False, compare=False)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Sequence[str] | str]) -> TickerDictionary:
        """``{ticker: [name, alias, ...]}`` (a single string is one name)."""
        names: dict[str, str] = {}
        display: dict[str, str] = {}
        for raw_ticker, raw_names in data.items():
            ticker = normalise_ticker(str(raw_ticker))
            aliases = [raw_names] if isinstance(raw_names, str) else list(raw_names)
            aliases = [str(a).strip() for a in aliases if str(a).strip()]
            display[ticker] = aliases[0] if aliases else ticker
            for alias in aliases:
                names.setdefault(alias.lower(), ticker)
        ordered = sorted(names, key=len, reverse=True)
        pattern = (
            re.compile(r"(?<!\w)(?:" + "|".join(re.escape(n) for n in ordered) + r")(?!\w)", re.I)
            if ordered
            else None
        )
        return cls(names, display, pattern)

    @classmethod
    def load(cls, path: str | Path) -> TickerDictionary:
        """Read a YAML or JSON file ``{ticker: [names]}``. Raises TickerDictionaryError."""
        file = Path(path)
        try:
            text = file.read_text("utf-8")
            data = json.loads(text) if file.suffix == ".json" else yaml.safe_load(text)
        except (OSError, ValueError, yaml.YAMLError) as exc:
            raise TickerDictionaryError(str(file), f"unreadable ({exc})") from exc
        if not isinstance(data, dict):
            raise TickerDictionaryError(str(file), "top level must map tickers to name lists")
        for ticker, value in data.items():
            ok = isinstance(value, str) or (
                isinstance(value, list) and all(isinstance(v, str) for v in value)
            )
            if not ok:
                raise TickerDictionaryError(
                    str(file), f"{ticker!r} must map to a name or a list of names, got {value!r}"
                )
        return cls.from_mapping(data)

    def ticker_of(self, name: str) -> str | None:
        """The ticker of a name or alias (case-insensitive), or None."""
        return self.names.get(name.strip().lower())

    def find(self, text: str) -> list[Mention]:
        """Every dictionary name in ``text``, longest match first, non-overlapping."""
        if self._pattern is None:
            return []
        return [
            Mention(m.group(0), m.start(), m.end(), self.names[m.group(0).lower()])
            for m in self._pattern.finditer(text)
        ]


EMPTY_DICTIONARY = TickerDictionary()


def cashtags(text: str) -> list[Mention]:
    """``$TSLA``-style mentions (the name keeps the ``$``)."""
    return [
        Mention(m.group(0), m.start(), m.end(), normalise_ticker(m.group(1)))
        for m in _CASHTAG.finditer(text)
    ]


def exchange_tags(text: str) -> list[Mention]:
    """``(NASDAQ:TLRY)``-style mentions; the span is the symbol's."""
    return [
        Mention(m.group(1), m.start(1), m.end(1), normalise_ticker(m.group(1)))
        for m in _EXCHANGE.finditer(text)
    ]


def extract_mentions(text: str, dictionary: TickerDictionary = EMPTY_DICTIONARY) -> list[Mention]:
    """Cashtags, exchange tags and dictionary names in ``text``, in text order; a span already
    covered by an earlier kind (cashtag, then exchange tag, then name) is not repeated."""
    taken: list[Mention] = []
    for found in (cashtags(text), exchange_tags(text), dictionary.find(text)):
        for mention in found:
            if not any(mention.start < t.end and t.start < mention.end for t in taken):
                taken.append(mention)
    return sorted(taken, key=lambda m: m.start)


def extract_tickers(text: str, dictionary: TickerDictionary = EMPTY_DICTIONARY) -> tuple[str, ...]:
    """The distinct tickers ``text`` names, in order of first mention."""
    return tuple(dict.fromkeys(m.ticker for m in extract_mentions(text, dictionary) if m.ticker))


def merge_tickers(given: Iterable[str], found: Iterable[str]) -> tuple[str, ...]:
    """The input's tickers, then those found in the text, without repeats."""
    return tuple(dict.fromkeys([*(normalise_ticker(t) for t in given), *found]))
