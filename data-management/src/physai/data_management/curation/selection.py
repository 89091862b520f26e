"""Choosing episodes: id lists, filters, seeded splits.

Episode ids are written `4`, `0-9` (inclusive) or, with several sources, `1:4` / `1:0-9`
(source 1 only); a plain id means that episode of every source. Lists are comma-separated.

A split is `NAME=FRACTION` (written with a dot: `0.8`, `1.0`; a seeded random share of the
selected episodes), `NAME=IDS` (those episodes) or `NAME=rest` (what the other parts did not
take). Fractions of one split must sum to at most 1; each part gets its share rounded, largest
remainders first, so the sizes always add up; its episodes keep their source order.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from physai.core.errors import UserError
from physai.data_management.curation.catalog import FIELD_NAMES, EpisodeRecord
from physai.data_management.curation.expressions import FilterExpression

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
_RANGE = re.compile(r"^(?:(\d+):)?(\d+)(?:-(\d+))?$")


@dataclass(frozen=True)
class EpisodeRange:
    """Episodes `first..last` (inclusive) of one source, or of every source (`source=None`)."""

    source: int | None
    first: int
    last: int

    def contains(self, record: EpisodeRecord) -> bool:
        """True when the record's (source, episode) falls in the range."""
        return (self.source is None or self.source == record.source) and (
            self.first <= record.episode_index <= self.last
        )


def parse_episode_ids(text: str) -> list[EpisodeRange]:
    """`"0-9,12,1:3"` → ranges; a one-line UserError on anything else."""
    ranges = []
    for part in text.split(","):
        part = part.strip()
        match = _RANGE.match(part)
        if match is None:
            raise UserError(
                f"bad episode ids {text!r}: {part!r} is not N, N-M, S:N or S:N-M "
                "(non-negative integers)"
            )
        source, first, last = match.groups()
        low, high = int(first), int(last if last is not None else first)
        if high < low:
            raise UserError(f"bad episode ids {text!r}: range {part!r} ends before it starts")
        ranges.append(EpisodeRange(None if source is None else int(source), low, high))
    return ranges


def _in_any(record: EpisodeRecord, ranges: Iterable[EpisodeRange]) -> bool:
    return any(r.contains(record) for r in ranges)


class Selection(BaseModel):
    """Which episodes to keep; every criterion given must hold (an empty one keeps all)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    episodes: str | None = Field(default=None, description="ids to keep, e.g. '0-9,12'")
    drop_episodes: str | None = Field(default=None, description="ids to delete")
    tasks: list[str] = Field(default_factory=list, description="keep episodes with any of these")
    outcomes: list[str] = Field(default_factory=list, description="success | failure | partial")
    where: str | None = Field(default=None, description="a filter expression (expressions.py)")

    def apply(self, records: Sequence[EpisodeRecord], sources: int) -> list[EpisodeRecord]:
        """The records this selection keeps, in their order (errors name the bad input)."""
        keep = parse_episode_ids(self.episodes) if self.episodes else None
        drop = parse_episode_ids(self.drop_episodes) if self.drop_episodes else []
        for ranges in (keep or [], drop):
            for r in ranges:
                if r.source is not None and r.source >= sources:
                    raise UserError(
                        f"episode ids name source {r.source}, but {sources} source(s) are given"
                    )
        for outcome in self.outcomes:
            if outcome not in ("success", "failure", "partial"):
                raise UserError(
                    f"bad outcome {outcome!r}: use success, failure or partial (or --where)"
                )
        expression = FilterExpression(self.where, set(FIELD_NAMES)) if self.where else None
        self._check_ids_exist(records, keep, "--episodes")
        self._check_ids_exist(records, drop, "--drop-episodes")
        chosen = []
        for record in records:
            if keep is not None and not _in_any(record, keep):
                continue
            if _in_any(record, drop):
                continue
            if self.tasks and not set(self.tasks) & set(record.info.tasks):
                continue
            if self.outcomes and record.outcome not in self.outcomes:
                continue
            where = f"episode {record.episode_index} of {record.dataset}"
            if expression is not None and not expression.matches(record.fields(), where):
                continue
            chosen.append(record)
        return chosen

    @staticmethod
    def _check_ids_exist(
        records: Sequence[EpisodeRecord], ranges: list[EpisodeRange] | None, option: str
    ) -> None:
        """A single id that names no episode is a typo: say so instead of selecting nothing."""
        for r in ranges or []:
            if r.first == r.last and not any(r.contains(rec) for rec in records):
                where = "any source" if r.source is None else f"source {r.source}"
                raise UserError(f"{option}: episode {r.first} does not exist in {where}")


@dataclass(frozen=True)
class SplitPart:
    """One output of a split: a fraction, an id list, or the rest."""

    name: str
    fraction: float | None = None
    ids: tuple[EpisodeRange, ...] = ()
    rest: bool = False


def parse_split(items: Sequence[str]) -> list[SplitPart]:
    """`["train=0.8", "val=0.2"]`, `["val=0-9", "train=rest"]` → parts (module doc)."""
    parts: list[SplitPart] = []
    for item in items:
        name, sep, value = item.partition("=")
        name, value = name.strip(), value.strip()
        if not sep or not value:
            raise UserError(f"bad split {item!r}: write NAME=FRACTION, NAME=IDS or NAME=rest")
        check_name(name, "split name")
        if any(p.name == name for p in parts):
            raise UserError(f"split name {name!r} is given twice")
        if value == "rest":
            parts.append(SplitPart(name, rest=True))
        elif re.fullmatch(r"\d*\.\d+|\d+\.", value):  # a dot makes it a fraction; N is an id
            fraction = float(value)
            if not 0.0 < fraction <= 1.0:
                raise UserError(f"bad split {item!r}: a fraction is in (0, 1]")
            parts.append(SplitPart(name, fraction=fraction))
        else:
            parts.append(SplitPart(name, ids=tuple(parse_episode_ids(value))))
    if len(parts) < 1:
        raise UserError("a split needs at least one part")
    if sum(1 for p in parts if p.rest) > 1:
        raise UserError("only one split part can be 'rest'")
    total = sum(p.fraction or 0.0 for p in parts)
    if total > 1.0 + 1e-9:
        raise UserError(f"split fractions sum to {total:g}, more than 1")
    return parts


def check_name(name: str, what: str) -> str:
    """A dataset or split name: letters, digits, '_', '.', '-'; no path separators or '..'."""
    if not NAME.match(name) or ".." in name:
        raise UserError(
            f"bad {what} {name!r}: use letters, digits, '_', '.' and '-' (no '/', no '..', "
            "at most 100 characters)"
        )
    return name


def assign_split(
    records: Sequence[EpisodeRecord], parts: Sequence[SplitPart], seed: int
) -> dict[str, list[EpisodeRecord]]:
    """Each part's records (order kept); an episode goes to one part at most."""
    taken: set[tuple[int, int]] = set()
    result: dict[str, list[EpisodeRecord]] = {p.name: [] for p in parts}
    for part in parts:
        if part.ids:
            chosen = [r for r in records if _in_any(r, part.ids)]
            twice = [r for r in chosen if r.key in taken]
            if twice:
                raise UserError(
                    f"split {part.name!r} takes episode {twice[0].episode_index}, already in "
                    "another part"
                )
            result[part.name] = chosen
            taken.update(r.key for r in chosen)
    pool = [r for r in records if r.key not in taken]
    fractional = [p for p in parts if p.fraction is not None]
    if fractional:
        counts = _largest_remainder([p.fraction or 0.0 for p in fractional], len(pool))
        order = np.random.default_rng(seed).permutation(len(pool))
        start = 0
        for part, count in zip(fractional, counts, strict=True):
            picked = set(int(i) for i in order[start : start + count])
            result[part.name] = [r for i, r in enumerate(pool) if i in picked]
            taken.update(r.key for r in result[part.name])
            start += count
    for part in parts:
        if part.rest:
            result[part.name] = [r for r in records if r.key not in taken]
    empty = [name for name, chosen in result.items() if not chosen]
    if empty:
        raise UserError(f"split part {empty[0]!r} would hold no episodes")
    return result


def _largest_remainder(fractions: Sequence[float], total: int) -> list[int]:
    """Integer shares of `total` for `fractions`, adding up to round(sum * total)."""
    exact = [f * total for f in fractions]
    counts = [math.floor(x) for x in exact]
    target = min(total, round(sum(fractions) * total))
    by_remainder = sorted(range(len(exact)), key=lambda i: exact[i] - counts[i], reverse=True)
    for i in by_remainder[: max(0, target - sum(counts))]:
        counts[i] += 1
    return counts
