"""Synthetic financial headlines: the demo's news feed and its small training corpus.

Seeded and pure: the same seed gives the same stream. Each item carries the topic and sentiment it
was written for, so the demo can train on it and check what the monitor reports.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime

from monitor.contract import TWITTER_TOPICS

COMPANIES: tuple[tuple[str, str], ...] = (
    ("Apple", "AAPL"),
    ("Microsoft", "MSFT"),
    ("Amazon", "AMZN"),
    ("Tesla", "TSLA"),
    ("Nvidia", "NVDA"),
    ("JPMorgan", "JPM"),
    ("Goldman Sachs", "GS"),
    ("Exxon Mobil", "XOM"),
    ("Chevron", "CVX"),
    ("Pfizer", "PFE"),
    ("Boeing", "BA"),
    ("Walmart", "WMT"),
    ("Netflix", "NFLX"),
    ("Intel", "INTC"),
    ("Citigroup", "C"),
    ("Ford", "F"),
    ("Meta", "META"),
    ("Alphabet", "GOOGL"),
    ("Coca-Cola", "KO"),
    ("Disney", "DIS"),
    ("Bank of America", "BAC"),
    ("Wells Fargo", "WFC"),
    ("Newmont", "NEM"),
    ("Uber", "UBER"),
)
BROKERS = ("Morgan Stanley", "Barclays", "UBS", "Jefferies", "Bernstein", "Citi", "Wedbush")
BANKS = ("the Fed", "the ECB", "the Bank of England", "the Bank of Japan", "the PBOC")
CURRENCIES = ("the dollar", "the euro", "the yen", "sterling", "the yuan")
EXECS = ("CEO", "CFO", "chairman", "COO", "head of trading")

# topic -> sentiment -> templates. Slots: {co} company, {tk} ticker, {br} broker, {bank},
# {fx} currency, {pct} percent, {n} small number, {ex} executive title.
TEMPLATES: Mapping[str, Mapping[str, tuple[str, ...]]] = {
    "Analyst Update": {
        "negative": (
            "{br} downgrades {co} to sell, cuts target",
            "{br} slashes {co} price target on weak demand",
        ),
        "neutral": (
            "{br} initiates coverage of {co} with hold rating",
            "{br} reiterates neutral on {co}",
        ),
        "positive": (
            "{br} upgrades {co} to buy, sees {pct}% upside",
            "{br} raises {co} target after strong checks",
        ),
    },
    "Fed | Central Banks": {
        "negative": (
            "{bank} signals more hikes as inflation stays hot",
            "Markets rattled as {bank} warns of prolonged tightening",
        ),
        "neutral": ("{bank} holds rates steady, as expected", "{bank} minutes due Wednesday"),
        "positive": (
            "{bank} signals rate cuts ahead, easing pressure on borrowers",
            "{bank} says inflation is cooling faster than feared",
        ),
    },
    "Company | Product News": {
        "negative": (
            "{co} recalls {n}00,000 vehicles over safety defect",
            "{co} delays flagship product launch after supply problems",
        ),
        "neutral": (
            "{co} to hold product event next month",
            "{co} unveils updated lineup at annual conference",
        ),
        "positive": (
            "{co} launch draws record preorders",
            "{co} wins major contract, expands partnership",
        ),
    },
    "Treasuries | Corporate Debt": {
        "negative": (
            "{co} bonds slump as default fears mount",
            "Treasury yields spike as debt auction draws weak demand",
        ),
        "neutral": (
            "{co} prices ${n} billion bond offering",
            "Treasury to auction ${n}0 billion in 10-year notes",
        ),
        "positive": (
            "{co} bonds rally after credit upgrade",
            "Strong demand at Treasury auction calms bond market",
        ),
    },
    "Dividend": {
        "negative": (
            "{co} suspends dividend to preserve cash",
            "{co} slashes quarterly dividend by {pct}%",
        ),
        "neutral": ("{co} declares regular quarterly dividend", "{co} sets dividend record date"),
        "positive": (
            "{co} raises dividend {pct}% and expands buyback",
            "{co} announces special dividend",
        ),
    },
    "Earnings": {
        "negative": (
            "{co} misses estimates and cuts full-year guidance",
            "{co} quarterly profit plunges {pct}%, shares tumble",
        ),
        "neutral": (
            "{co} to report quarterly results after the bell",
            "{co} earnings in line with expectations",
        ),
        "positive": (
            "{co} beats estimates and raises outlook",
            "{co} posts record quarterly revenue, profit up {pct}%",
        ),
    },
    "Energy | Oil": {
        "negative": (
            "Oil prices crash {pct}% as demand fears deepen",
            "{co} hit by refinery outage and falling crude prices",
        ),
        "neutral": (
            "OPEC meets to review output policy",
            "Oil little changed ahead of inventory data",
        ),
        "positive": (
            "Oil rallies as supply tightens",
            "{co} shares rise as crude hits multi-month high",
        ),
    },
    "Financials": {
        "negative": (
            "{co} shares sink on loan loss provisions",
            "Bank stocks tumble as deposit outflows accelerate",
        ),
        "neutral": (
            "{co} to present at financial services conference",
            "Banks report weekly deposit data",
        ),
        "positive": (
            "{co} trading revenue jumps, beats forecasts",
            "Bank stocks rally after stress tests pass",
        ),
    },
    "Currencies": {
        "negative": ("{fx} plunges to multi-year low", "{fx} slides as traders flee risk"),
        "neutral": ("{fx} steady ahead of jobs data", "{fx} trades in narrow range"),
        "positive": ("{fx} surges after strong data", "{fx} rebounds as outlook improves"),
    },
    "General News | Opinion": {
        "negative": (
            "Why investors should brace for a painful year",
            "Opinion: the economy is heading for trouble",
        ),
        "neutral": ("What to watch in markets this week", "Five things to know before the open"),
        "positive": (
            "Why the bull market still has room to run",
            "Opinion: the recovery is stronger than it looks",
        ),
    },
    "Gold | Metals | Materials": {
        "negative": (
            "Copper slumps as China demand weakens",
            "{co} cuts output as metal prices fall",
        ),
        "neutral": ("Gold flat as traders await data", "Metals mixed in quiet trade"),
        "positive": ("Gold hits record high on haven demand", "{co} jumps as copper prices soar"),
    },
    "IPO": {
        "negative": (
            "IPO of {co} spin-off pulled amid market turmoil",
            "Shares of newly listed {co} unit sink below offer price",
        ),
        "neutral": ("{co} unit files for IPO", "{co} spin-off sets IPO terms"),
        "positive": (
            "{co} spin-off soars {pct}% in market debut",
            "Hot IPO from {co} unit prices above range",
        ),
    },
    "Legal | Regulation": {
        "negative": (
            "{co} sued by regulators over misleading disclosures",
            "{co} faces antitrust probe and heavy fines",
        ),
        "neutral": (
            "Court sets hearing date in {co} case",
            "Regulators publish new disclosure guidance",
        ),
        "positive": (
            "{co} wins court case, ending years of litigation",
            "Regulators clear {co} of wrongdoing",
        ),
    },
    "M&A | Investments": {
        "negative": (
            "{co} deal collapses after regulators object",
            "{co} takeover talks break down",
        ),
        "neutral": (
            "{co} in talks to acquire a smaller rival",
            "{co} confirms review of strategic options",
        ),
        "positive": (
            "{co} agrees to be acquired at a {pct}% premium",
            "{co} lands major investment from sovereign fund",
        ),
    },
    "Macro": {
        "negative": (
            "Recession fears grow as factory output contracts",
            "Inflation jumps more than expected, squeezing consumers",
        ),
        "neutral": ("Jobs report due Friday", "GDP data in line with forecasts"),
        "positive": (
            "Economy adds more jobs than expected",
            "Consumer confidence climbs to two-year high",
        ),
    },
    "Markets": {
        "negative": ("Stocks plunge as selloff deepens", "Wall Street tumbles, volatility spikes"),
        "neutral": ("Stocks open flat ahead of data", "Futures little changed before the open"),
        "positive": ("Stocks rally to record highs", "Wall Street climbs as risk appetite returns"),
    },
    "Politics": {
        "negative": (
            "Government shutdown looms as talks collapse",
            "Trade war escalates with new tariffs",
        ),
        "neutral": ("Lawmakers debate spending bill", "Election campaign enters final week"),
        "positive": (
            "Lawmakers strike budget deal, averting shutdown",
            "Trade talks make progress, tariffs eased",
        ),
    },
    "Personnel Change": {
        "negative": (
            "{co} {ex} resigns abruptly amid investigation",
            "{co} ousts {ex} after accounting scandal",
        ),
        "neutral": ("{co} names new {ex}", "{co} appoints board member"),
        "positive": ("{co} shares rise as respected {ex} joins", "{co} hires star {ex} from rival"),
    },
    "Stock Commentary": {
        "negative": ("{tk} looks expensive, avoid for now", "Why {co} stock could fall further"),
        "neutral": ("Is {co} stock a buy?", "{tk}: what the charts say"),
        "positive": ("{co} is a great long-term buy", "{tk} set to break out, says strategist"),
    },
    "Stock Movement": {
        "negative": ("{co} shares tumble {pct}% in heavy trading", "{tk} falls to 52-week low"),
        "neutral": ("{co} shares unchanged in early trade", "{tk} trading volume above average"),
        "positive": ("{co} shares surge {pct}% to record", "{tk} jumps after strong session"),
    },
}
SENTIMENTS: tuple[str, ...] = ("negative", "neutral", "positive")
# Feed mix: mostly neutral, as in real news and in the twitter data.
BASE_SENTIMENT_WEIGHTS: tuple[float, ...] = (0.17, 0.63, 0.20)
PREFIXES = ("BREAKING: ", "UPDATE 1-", "WRAPUP: ", "Exclusive: ", "FOCUS-")
SUFFIXES = (
    " - sources",
    " - report",
    ", analysts say",
    " in early trade",
    " (updated)",
    " as investors weigh outlook",
    ", filing shows",
    " on Tuesday",
    " late in the session",
)
SOURCES = ("newswire", "markets-desk", "social", "exchange-filings")


@dataclass(frozen=True, slots=True)
class SyntheticItem:
    """One generated headline and the labels it was written for."""

    id: str
    headline: str
    topic: str
    sentiment: str
    tickers: tuple[str, ...]
    source: str

    def message(self, published_at: datetime) -> dict[str, object]:
        """The ``news.raw`` JSON object for this item."""
        return {
            "id": self.id,
            "headline": self.headline,
            "body": None,
            "source": self.source,
            "published_at": published_at.isoformat().replace("+00:00", "Z"),
            "tickers": list(self.tickers),
        }


class NewsGenerator:
    """An endless, seeded stream of headlines. ``burst`` skews one topic towards one sentiment."""

    def __init__(self, seed: int = 7, prefix: str = "syn") -> None:
        self._rng = random.Random(seed)
        self._prefix = prefix
        self._count = 0

    def _fill(self, template: str) -> tuple[str, tuple[str, ...]]:
        rng = self._rng
        company, ticker = rng.choice(COMPANIES)
        text = template.format(
            co=company,
            tk=f"${ticker}",
            br=rng.choice(BROKERS),
            bank=rng.choice(BANKS),
            fx=rng.choice(CURRENCIES),
            pct=rng.randint(2, 40),
            n=rng.randint(1, 9),
            ex=rng.choice(EXECS),
        )
        text = text[0].upper() + text[1:]
        # Feed decorations: wire prefixes and trailing context, so repeats are rarely identical.
        if rng.random() < 0.3:
            text = rng.choice(PREFIXES) + text
        if rng.random() < 0.4:
            text += rng.choice(SUFFIXES)
        uses_company = "{co}" in template or "{tk}" in template
        return text, ((ticker,) if uses_company else ())

    def item(self, topic: str | None = None, sentiment: str | None = None) -> SyntheticItem:
        """One headline; topic and sentiment are drawn from the feed mix unless given."""
        rng = self._rng
        topic = topic or rng.choice(TWITTER_TOPICS)
        sentiment = sentiment or rng.choices(SENTIMENTS, BASE_SENTIMENT_WEIGHTS)[0]
        headline, tickers = self._fill(rng.choice(TEMPLATES[topic][sentiment]))
        self._count += 1
        return SyntheticItem(
            id=f"{self._prefix}-{self._count:08d}",
            headline=headline,
            topic=topic,
            sentiment=sentiment,
            tickers=tickers,
            source=rng.choice(SOURCES),
        )

    def stream(self) -> Iterator[SyntheticItem]:
        while True:
            yield self.item()

    def burst(self, topic: str, n: int, negative_share: float = 0.9) -> list[SyntheticItem]:
        """``n`` items on ``topic``, ``negative_share`` of them negative."""
        return [
            self.item(topic, "negative" if self._rng.random() < negative_share else "neutral")
            for _ in range(n)
        ]

    def corpus(self, per_class: int) -> list[SyntheticItem]:
        """A balanced training corpus: ``per_class`` items per (topic, sentiment)."""
        return [
            self.item(topic, sentiment)
            for topic in TWITTER_TOPICS
            for sentiment in SENTIMENTS
            for _ in range(per_class)
        ]
