"""Figures of a pairwise judge (R1-Reward style) from its verdicts: accuracy, Voting@K, position consistency.

Each pair (responses r0, r1, preferred index y) is judged in one or both orders: ``forward`` shows
(r0, r1) as Response 1 / Response 2, ``swapped`` shows (r1, r0). A judgement j is one (pair, order) with K
sampled outputs. Each output's verdict v is the position it names, 1 or 2 (:func:`parse_verdict`: the last
``<answer>`` content, else the last ``\\boxed{}``, must name exactly one of 1 and 2 — remote_rm's
``preference_accuracy`` rule), or none (invalid). The response a verdict picks is
``pick = shown[v - 1]`` with shown = (0, 1) forward and (1, 0) swapped.

With J judgements, S = J * K samples, P2 pairs judged in both orders and G question groups:

- accuracy = (1/J) * sum_j [pick of j's first sample == y_j]  (an invalid first sample is wrong; K = 1 figure)
- accuracy_voting (Voting@K) = (1/J) * sum_j [vote_j == y_j], where vote_j is the response with strictly more
  of j's K picks; equal counts are a tie (``ties``: at least one valid pick each way equally, ``no_vote``: no
  valid pick at all), and a tie or no vote is wrong.
- position_consistency = (1/P2) * sum_pairs [pick_forward == pick_swapped, both valid] on the first samples:
  the same RESPONSE chosen in both orders (so the same index means the verdict flipped); _voting: on the votes.
- invalid_rate = (samples with no verdict) / S; tie_rate = ties / J.
- accuracy_plus (MM-RLHF-RewardBench's Acc+) = (1/G) * sum_g [every first sample of every judgement in g right].
- per_source: the same figures over each source's judgements.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from openrlhf.utils.errors import UserError
from remote_rm.pairwise import preference_verdict

ORDERS = {"forward": (0, 1), "swapped": (1, 0)}


def parse_verdict(text: str) -> int | None:
    """1 or 2, the position the output prefers, or None when its answer names neither or both (the reward
    service's rule, :func:`remote_rm.pairwise.preference_verdict`)."""
    return preference_verdict(text)


def picked_response(verdict: int | None, order: str) -> int | None:
    """The response index (0 or 1) a verdict on the ``order`` prompt chooses."""
    return None if verdict is None else ORDERS[order][verdict - 1]


def vote(picks: list[int | None]) -> tuple[int | None, str]:
    """(winner, outcome): the response with strictly more picks and "win", else (None, "tie" | "no_vote")."""
    count0, count1 = picks.count(0), picks.count(1)
    if count0 != count1:
        return (0 if count0 > count1 else 1), "win"
    return None, ("tie" if count0 else "no_vote")


@dataclass(frozen=True)
class Judgement:
    """One pair judged in one order: the response each of its K outputs picks, and the vote."""

    pair_key: str
    group: str
    source: str
    order: str
    preferred: int
    picks: tuple[int | None, ...]

    @property
    def first_correct(self) -> bool:
        return self.picks[0] == self.preferred

    @property
    def voted(self) -> tuple[int | None, str]:
        return vote(list(self.picks))

    @property
    def voting_correct(self) -> bool:
        return self.voted[0] == self.preferred


def judgements_from_results(results: list[dict[str, Any]], where: str = "results") -> list[Judgement]:
    """Judgements of saved per-pair results (``{"where"|"id", "group", "source", "preferred", "judgements":
    [{"order", "outputs": [text, ...]}]}``); errors name the result and key."""
    out = []
    for i, item in enumerate(results):
        at = f"{where}[{i}]"
        if not isinstance(item, dict):
            raise UserError(f"{at}: expected an object, got {type(item).__name__}")
        missing = [k for k in ("preferred", "judgements") if k not in item]
        if missing:
            raise UserError(f"{at}: missing key(s) {missing} (has {sorted(item)})")
        if item["preferred"] not in (0, 1) or isinstance(item["preferred"], bool):
            raise UserError(f"{at}: preferred must be 0 or 1, got {item['preferred']!r}")
        key = str(item.get("where") or item.get("id") or i)
        if not isinstance(item["judgements"], list) or not item["judgements"]:
            raise UserError(f"{at}: judgements must be a non-empty list")
        for n, entry in enumerate(item["judgements"]):
            jat = f"{at}.judgements[{n}]"
            if not isinstance(entry, dict) or entry.get("order") not in ORDERS:
                raise UserError(f"{jat}: order must be one of {list(ORDERS)}")
            texts = entry.get("outputs")
            if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
                raise UserError(f"{jat}: outputs must be a non-empty list of texts")
            picks = tuple(picked_response(parse_verdict(t), entry["order"]) for t in texts)
            out.append(
                Judgement(
                    pair_key=key,
                    group=str(item.get("group") or key),
                    source=str(item.get("source") or "all"),
                    order=entry["order"],
                    preferred=item["preferred"],
                    picks=picks,
                )
            )
    return out


def _ratio(num: float, den: int) -> float | None:
    return num / den if den else None


def _consistency(judgements: list[Judgement]) -> tuple[float | None, float | None, int]:
    by_pair: dict[str, dict[str, Judgement]] = defaultdict(dict)
    for j in judgements:
        by_pair[j.pair_key][j.order] = j
    both = [(p["forward"], p["swapped"]) for p in by_pair.values() if len(p) == 2]
    first = sum(f.picks[0] is not None and f.picks[0] == s.picks[0] for f, s in both)
    voted = sum(f.voted[0] is not None and f.voted[0] == s.voted[0] for f, s in both)
    return _ratio(first, len(both)), _ratio(voted, len(both)), len(both)


def figures(judgements: list[Judgement]) -> dict[str, Any]:
    """The module docstring's figures over some judgements (None where a figure has no denominator)."""
    samples = sum(len(j.picks) for j in judgements)
    invalid = sum(p is None for j in judgements for p in j.picks)
    outcomes = [j.voted[1] for j in judgements]
    groups: dict[str, bool] = {}
    for j in judgements:
        groups[j.group] = groups.get(j.group, True) and j.first_correct
    consistency, consistency_voting, both = _consistency(judgements)
    return {
        "pairs": len({j.pair_key for j in judgements}),
        "judgements": len(judgements),
        "samples": samples,
        "accuracy": _ratio(sum(j.first_correct for j in judgements), len(judgements)),
        "accuracy_voting": _ratio(sum(j.voting_correct for j in judgements), len(judgements)),
        "position_consistency": consistency,
        "position_consistency_voting": consistency_voting,
        "pairs_in_both_orders": both,
        "invalid_rate": _ratio(invalid, samples),
        "invalid": invalid,
        "ties": outcomes.count("tie"),
        "no_vote": outcomes.count("no_vote"),
        "tie_rate": _ratio(outcomes.count("tie"), len(judgements)),
        "accuracy_plus": _ratio(sum(groups.values()), len(groups)),
        "groups": len(groups),
    }


def score_judgements(judgements: list[Judgement]) -> dict[str, Any]:
    """Overall figures, plus ``per_source`` (sorted by source name)."""
    report = figures(judgements)
    by_source: dict[str, list[Judgement]] = defaultdict(list)
    for j in judgements:
        by_source[j.source].append(j)
    report["per_source"] = {name: figures(by_source[name]) for name in sorted(by_source)}
    return report
