"""Time a consent register: read it, then the ids valid for a purpose, twice.

Usage (inside the project's environment, e.g. ``.venv/bin/python``)::

    python scripts/bench_consent.py [--records 1000000] [--json OUT.json]

Writes a register of ``--records`` records (one customer in 20 has two; about 80% for
``credit_scoring``, the rest for ``suitability``; grant times to the minute over two
years with an offset, a third with an expiry, one in 17 revoked 30 days later), then times

* ``read``: :func:`lianmo.data.consent.read_register`;
* ``first``: the first :meth:`~lianmo.data.consent.ConsentRegister.valid_ids` for a
  purpose (each distinct time text parsed once);
* ``again``: the same purpose at another time, as a serving node re-checks expiry every
  ``consent_refresh_s`` (integers compared only);
* ``per_record``: the baseline, each record's times parsed and compared on their own
  (the way the register was read at first), over the same records.

Both ways must give the same ids. Prints seconds and the ratio of ``per_record`` to
``first`` and to ``again``. The machine has two cores: do not run it next to another
benchmark. Not a test.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from lianmo.data.consent import ConsentRegister, parse_time, read_register

PURPOSE = "credit_scoring"


def write_register(path: Path, records: int, seed: int = 2026) -> None:
    rng = np.random.default_rng(seed)
    customers = np.arange(records)
    customers[::20] = np.maximum(customers[::20] - 1, 0)  # one in 20 a second record
    minutes = rng.integers(0, 2 * 365 * 24 * 60, records)
    start = np.datetime64("2025-01-01T00:00")
    given = start + minutes.astype("timedelta64[m]")
    granted = np.datetime_as_string(given)
    revoked = np.datetime_as_string(given + np.timedelta64(30 * 24 * 60, "m"))
    with path.open("w", encoding="utf-8") as out:
        out.write("id,purpose,granted_at,expires_at,revoked_at\n")
        for i in range(records):
            purpose = PURPOSE if i % 5 else "suitability"
            expires = "2027-06-30" if i % 3 == 0 else ""
            ended = f"{revoked[i]}+08:00" if i % 17 == 0 else ""  # 30 days after the grant
            out.write(f"c{customers[i]},{purpose},{granted[i]}+08:00,{expires},{ended}\n")


def per_record(register: ConsentRegister, purpose: str, at: datetime) -> np.ndarray:
    """Each record of ``purpose`` on its own: parse its times, compare them with ``at``."""
    granted, expires, revoked = (
        np.array([c.texts[k] for k in c.codes], dtype=object)
        for c in (register.granted, register.expires, register.revoked)
    )  # the texts, as the register held them before
    started = time.perf_counter()
    valid = []
    for row in np.flatnonzero(register.purposes == purpose.encode()):
        given = parse_time(granted[row])
        ends = [parse_time(c[row]) if c[row].strip() else None for c in (expires, revoked)]
        if given <= at and all(end is None or at < end for end in ends):
            valid.append(row)
    out = np.unique(register.ids[np.array(valid, dtype=np.intp)])
    per_record.seconds = time.perf_counter() - started  # type: ignore[attr-defined]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "consent.csv"
        write_register(path, args.records)
        started = time.perf_counter()
        register = read_register(str(path), "broker")
        read = time.perf_counter() - started
    at, later = datetime(2026, 12, 1, tzinfo=UTC), datetime(2026, 12, 2, tzinfo=UTC)
    started = time.perf_counter()
    ids = register.valid_ids(PURPOSE, at)
    first = time.perf_counter() - started
    started = time.perf_counter()
    register.valid_ids(PURPOSE, later)
    again = time.perf_counter() - started
    baseline = per_record(register, PURPOSE, at)
    if not np.array_equal(ids, baseline):
        raise SystemExit("the two ways gave different ids")
    slow = per_record.seconds  # type: ignore[attr-defined]
    result = {
        "records": args.records,
        "valid_ids": len(ids),
        "read_s": round(read, 3),
        "first_s": round(first, 3),
        "again_s": round(again, 4),
        "per_record_s": round(slow, 3),
        "ratio_first": round(slow / first, 1),
        "ratio_again": round(slow / again, 1),
    }
    print(
        f"{args.records:,} records, {len(ids):,} valid for {PURPOSE}: read {read:.2f} s; "
        f"valid ids first {first:.3f} s, again {again:.4f} s; per record {slow:.2f} s "
        f"({result['ratio_first']}x / {result['ratio_again']}x)"
    )
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
