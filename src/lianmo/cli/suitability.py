"""``lianmo suitability match``: the broker's matching step after a multi-class scoring job.

Local and plaintext, at the guest only: it reads the class probabilities the scoring job
wrote into the guest's job folder, the broker's product table and (optionally) its
customers' holdings, and writes per customer the estimated level, its confidence, the
eligible products and the flagged holdings (rule: :mod:`lianmo.models.suitability`).
Nothing here talks to another party.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import click

from lianmo.models.suitability import DEFAULT_CONFIDENCE, Match, MatchSummary


@click.group()
def suitability() -> None:
    """Suitability: match customers' estimated risk levels to products (guest only)."""


@suitability.command("match")
@click.option(
    "--probabilities",
    required=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="Class probabilities (id,p_0..p_K-1[,class]): a multi-class scoring job's "
    "scores.csv in the guest's job folder; class k is level C(k+1).",
)
@click.option(
    "--products",
    required=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="Product table: product_id,risk_level (R1..R5).",
)
@click.option(
    "--holdings",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Holdings: customer_id,product_id; held products above the estimate are flagged.",
)
@click.option(
    "--confidence",
    type=click.FloatRange(0.0, 1.0, min_open=True),
    default=DEFAULT_CONFIDENCE,
    show_default=True,
    help="Estimated level: the highest L with P(level >= L) >= this.",
)
@click.option(
    "--out",
    required=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="Where to write customer_id,level,confidence,eligible,flagged (lists joined by ';').",
)
def match_cmd(
    probabilities: Path, products: Path, holdings: Path | None, confidence: float, out: Path
) -> None:
    """Estimate each customer's level, list eligible products and flag held ones above it.

    A product of level Rn fits customers of level Cn and above. The estimated level is
    conservative: the highest level the customer tolerates with probability at least
    --confidence (C1 if no higher level is that sure).
    """
    matches, held = run_match(probabilities, products, holdings, confidence, out)
    for line in summary_lines(matches, held, confidence):
        click.echo(line)
    click.echo(f"matches: {out}")


def run_match(
    probabilities: Path, products: Path, holdings: Path | None, confidence: float, out: Path
) -> tuple[list[Match], dict[str, list[str]]]:
    """Read the three files, match, write ``out``; the matches and the holdings read."""
    from lianmo.data.suitability_files import (
        read_holdings,
        read_probabilities,
        read_products,
        write_matches,
    )
    from lianmo.models.suitability import match

    table = read_products(products)
    held = read_holdings(holdings, table) if holdings else {}
    ids, p = read_probabilities(probabilities)
    matches = match(ids, p, table, held, confidence)
    write_matches(out, matches)
    return matches, held


def summary_lines(
    matches: Sequence[Match], holdings: Mapping[str, Sequence[str]], confidence: float
) -> list[str]:
    """Customers per estimated level, eligible products per customer, flagged holdings."""
    from lianmo.models.suitability import summarise

    s: MatchSummary = summarise(matches, holdings)
    levels = ", ".join(f"C{lv} {n}" for lv, n in s.per_level.items())
    lines = [
        f"matched {s.customers} customers at confidence {confidence:g}: estimated levels "
        f"{levels or '-'}",
        f"eligible products per customer: mean {s.eligible_mean:.1f}, min {s.eligible_min}, "
        f"max {s.eligible_max}",
    ]
    skipped = len(set(holdings) - {m.customer_id for m in matches})
    lines.append(
        f"holdings: {s.with_holdings} customers hold products; {s.flagged_holdings} holdings "
        f"of {s.flagged_customers} customers are above their estimated level (flagged)"
        + (f"; {skipped} customers with holdings have no estimate (not scored)" if skipped else "")
    )
    return lines
