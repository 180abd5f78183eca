"""Station faults as plain data: when connectors fail, with which error, and for how long.

Pure (numpy and the standard library): no SimPy, no I/O. Failures form a Poisson process, so
the time between two failures of one connector (or one charger's power) is exponential with
the configured MTBF whatever happens in between; a failure of a part already down extends its
repair. Callers give each station its own stream, so faults shift no other random number.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np


def next_failure(rng: np.random.Generator, mtbf_s: float) -> float:
    """Seconds until the next failure of a part whose mean time between failures is
    `mtbf_s` (exponential: failures do not remember the last one). Always finite and > 0."""
    if not (math.isfinite(mtbf_s) and mtbf_s > 0.0):
        raise ValueError(f"mtbf_s must be a positive number of seconds (got {mtbf_s!r})")
    gap = float(rng.exponential(mtbf_s))
    # exponential() can return exactly 0.0; a zero gap would fault twice in one instant.
    return gap if gap > 0.0 else math.ulp(mtbf_s)


@dataclass(frozen=True, slots=True)
class ConnectorFault:
    """One connector fault: EVSE `evse_id` fails at `at_s` (simulated seconds) reporting
    `error_code` (a 1.6 ChargePointErrorCode name) and needs `repair_s` to be repaired."""

    at_s: float
    evse_id: int
    error_code: str
    repair_s: float


def connector_faults(
    rng: np.random.Generator,
    mtbf_s: float,
    mean_repair_s: float,
    error_codes: Sequence[str],
    evse_ids: Sequence[int],
    horizon_s: float = math.inf,
    start_s: float = 0.0,
) -> Iterator[ConnectorFault]:
    """The faults of a station's connectors in time order from `start_s`, lazily, until
    `horizon_s` (exclusive; infinity: for ever).

    Each connector fails as a Poisson process of rate 1/mtbf_s, so together they are one of
    rate n/mtbf_s whose every failure picks its connector uniformly (the same law, drawn from
    one stream). Each fault draws, in this order, the gap, the connector, the error code
    (uniformly) and the repair time (exponential, mean `mean_repair_s`): four draws a fault, so
    a seed gives the same faults however far they are read.
    """
    if not evse_ids:
        raise ValueError("a station without connectors cannot have connector faults")
    if not error_codes:
        raise ValueError("error_codes must name at least one error code")
    if not (math.isfinite(mean_repair_s) and mean_repair_s > 0.0):
        raise ValueError(f"mean_repair_s must be positive (got {mean_repair_s!r})")
    station_mtbf_s = mtbf_s / len(evse_ids)
    t = start_s
    while True:
        t += next_failure(rng, station_mtbf_s)
        evse = int(rng.integers(len(evse_ids)))
        code = int(rng.integers(len(error_codes)))
        repair = next_failure(rng, mean_repair_s)
        if t >= horizon_s:
            return
        yield ConnectorFault(t, evse_ids[evse], error_codes[code], repair)


def failure_times(
    rng: np.random.Generator, mtbf_s: float, horizon_s: float = math.inf, start_s: float = 0.0
) -> Iterator[float]:
    """The failure instants of one part (e.g. a charger's power supply) from `start_s`,
    lazily, until `horizon_s` (exclusive)."""
    t = start_s
    while True:
        t += next_failure(rng, mtbf_s)
        if t >= horizon_s:
            return
        yield t


def downtime_s(intervals: Sequence[tuple[float, float]], lo: float, hi: float) -> float:
    """Seconds within [lo, hi) covered by the union of `intervals` ((start, end) pairs, in any
    order, possibly overlapping): a part's time down when overlapping faults extend repairs."""
    total = 0.0
    cur_start = cur_end = -math.inf
    for start, end in sorted(intervals):
        start, end = max(start, lo), min(end, hi)
        if end <= start:
            continue
        if start > cur_end:
            if cur_end > cur_start:
                total += cur_end - cur_start
            cur_start, cur_end = start, end
        elif end > cur_end:
            cur_end = end
    if cur_end > cur_start:
        total += cur_end - cur_start
    return total
