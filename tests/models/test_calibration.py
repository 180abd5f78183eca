"""The bundled archetypes reproduce the published figures they were calibrated to.

Each check simulates 20-40k EVs over a whole year (both DST changes included) and compares with
docs `demand-defaults.md`. Every tolerance is several standard errors of its estimate wide, yet
far narrower than the error a plausible bug would cause (a wrong profile, UTC instead of local
time, a forgotten weekend factor, a copula that is not wired in).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import cache
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from models.archetypes import ARCHETYPES
from models.calendar import Calendar
from models.demand import DemandStream, SiteDayFactors
from models.profiles import HourlyProfile
from models.rng import charger_streams
from models.vehicles import VehicleMix

DAYS = 364  # 52 whole weeks from a Monday: weekdays and weekends in their true proportion
CAL = Calendar(datetime(2025, 1, 6, tzinfo=ZoneInfo("Europe/Amsterdam")), "Europe/Amsterdam")
WEEKEND = np.array([CAL.is_weekend(d) for d in range(DAYS)])
MIX = VehicleMix.default()
SEED = 2025
# Chargers per archetype, for ~20-40k EVs in the year.
CHARGERS = {"home": 100, "workplace": 80, "public_ac": 50, "dc_fast": 10, "depot_van": 50}
STOCHASTIC = ["home", "workplace", "public_ac", "dc_fast"]

# Published figures (ElaadNL via EV2Gym; ACN-Data DC charger), hours and kWh.
ENERGY_MEDIAN = {"home": 19.4, "workplace": 8.8, "public_ac": 7.2, "dc_fast": 19.1}
CONNECTION_MEDIAN = {"home": 11.0, "workplace": 4.9, "public_ac": 4.4, "dc_fast": 0.75}


@dataclass(frozen=True)
class Sample:
    """What a year of one archetype's chargers produced."""

    arrival_s: np.ndarray
    local_hour: np.ndarray
    weekend: np.ndarray  # per EV: arrived on a Saturday or Sunday
    energy_kwh: np.ndarray
    dwell_h: np.ndarray
    counts: np.ndarray  # (chargers, days): arrivals per charger and local day


@cache
def simulate(name: str, site: str = "site", shared_factors: bool = True) -> Sample:
    params = ARCHETYPES[name].params
    k = getattr(params, "overdispersion_k", None)
    factors = SiteDayFactors(SEED, site, k) if k and shared_factors else None
    n = CHARGERS[name]
    arrival: list[float] = []
    energy: list[float] = []
    dwell: list[float] = []
    counts = np.zeros((n, DAYS), dtype=int)
    for i in range(n):
        stream = DemandStream(params, CAL, charger_streams(SEED, site, i), MIX, factors)
        first = len(arrival)
        for ev in stream:
            if ev.arrival_s >= DAYS * 86400.0:
                break
            arrival.append(ev.arrival_s)
            energy.append(ev.energy_wanted_kwh)
            dwell.append(ev.dwell_s / 3600.0)
        counts[i] = np.bincount(CAL.days_of(np.array(arrival[first:])), minlength=DAYS)
    t = np.array(arrival)
    return Sample(
        arrival_s=t,
        local_hour=np.asarray(CAL.local_hour(t)),
        weekend=WEEKEND[CAL.days_of(t)],
        energy_kwh=np.array(energy),
        dwell_h=np.array(dwell),
        counts=counts,
    )


def _histogram(hours: np.ndarray) -> np.ndarray:
    return np.bincount(hours.astype(int), minlength=24)[:24] / hours.size


def _tv(p: np.ndarray, q: np.ndarray) -> float:
    return 0.5 * float(np.abs(p - q).sum())


@pytest.mark.parametrize("name", STOCHASTIC)
def test_weekday_arrival_profile(name: str) -> None:
    s = simulate(name)
    weekday = s.local_hour[~s.weekend]
    assert weekday.size > 15_000
    hist = _histogram(weekday)
    profile = HourlyProfile(ARCHETYPES[name].params.weekday_shares)  # type: ignore[union-attr]
    assert int(hist.argmax()) == profile.peak_hour
    # Sampling noise alone gives a total variation of ~0.01 at this size; a profile shifted by
    # one hour (e.g. UTC instead of local time) gives > 0.1.
    assert _tv(hist, profile.probabilities) < 0.03


@pytest.mark.parametrize("name", ["home", "public_ac", "dc_fast"])
def test_weekend_arrival_profile(name: str) -> None:
    s = simulate(name)
    weekend = s.local_hour[s.weekend]
    assert weekend.size > 5_000
    hist = _histogram(weekend)
    profile = HourlyProfile(ARCHETYPES[name].params.weekend_shares)  # type: ignore[union-attr]
    # Fewer weekend EVs, so more noise (~0.02); using the weekday shape instead gives > 0.1 for
    # home and public AC.
    assert _tv(hist, profile.probabilities) < 0.04


def test_the_weekday_and_weekend_shapes_really_differ() -> None:
    # Guards the weekend test: it can only catch a mix-up if the two tables differ by more
    # than its tolerance.
    for name in ("home", "public_ac"):
        params = ARCHETYPES[name].params
        weekday = HourlyProfile(params.weekday_shares).probabilities  # type: ignore[union-attr]
        weekend = HourlyProfile(params.weekend_shares).probabilities  # type: ignore[union-attr]
        assert _tv(weekday, weekend) > 0.1


@pytest.mark.parametrize("name", STOCHASTIC)
def test_median_energy(name: str) -> None:
    # Sample medians of 20k+ EVs sit within ~1.5 % of the truth; the battery cap only trims
    # sessions far above the median. 10 % leaves room for both.
    median = float(np.median(simulate(name).energy_kwh))
    assert median == pytest.approx(ENERGY_MEDIAN[name], rel=0.10)


def test_home_energy_lower_quartile() -> None:
    # p25 is published for home only; it checks the interpolation below the median.
    assert np.quantile(simulate("home").energy_kwh, 0.25) == pytest.approx(8.2, rel=0.10)


@pytest.mark.parametrize("name", STOCHASTIC)
def test_median_connection_time(name: str) -> None:
    # Same sample size argument as for energy: ~1.5 % noise, 10 % tolerance.
    median = float(np.median(simulate(name).dwell_h))
    assert median == pytest.approx(CONNECTION_MEDIAN[name], rel=0.10)


def test_workplace_connection_time_mixture_matches_elaadnl() -> None:
    # The mixture's weights and stays were fitted to these two figures (fit: 4.92 h, 8.47 h);
    # 10 % / 15 % leaves room for sampling noise (~2 %), while the unfitted evsim values
    # (median 5.5 h) land outside.
    dwell = simulate("workplace").dwell_h
    assert np.median(dwell) == pytest.approx(4.9, rel=0.10)
    assert np.quantile(dwell, 0.75) == pytest.approx(8.5, rel=0.15)
    # Long stays belong to morning arrivals (the "worktime" component), short ones to the
    # afternoon: the mixture must make the stay depend on the arrival hour.
    hour = simulate("workplace").local_hour
    assert np.median(dwell[hour < 8.0]) > 2.0 * np.median(dwell[hour >= 14.0])


def test_energy_and_connection_time_are_positively_correlated() -> None:
    # Copula rho 0.4 gives a Spearman correlation of (6/pi)·asin(0.2) = 0.38 before the battery
    # cap; independent draws would give 0 (sd 0.006 at this size).
    s = simulate("home")
    rank_e = np.argsort(np.argsort(s.energy_kwh))
    rank_d = np.argsort(np.argsort(s.dwell_h))
    assert 0.25 < np.corrcoef(rank_e, rank_d)[0, 1] < 0.5


def test_workplace_weekends_carry_a_few_percent() -> None:
    counts = simulate("workplace").counts
    ratio = counts[:, WEEKEND].mean() / counts[:, ~WEEKEND].mean()
    # Weekend factor 0.05, estimated from ~500 weekend EVs (sd ~0.003); ignoring the factor
    # would give 1.
    assert 0.03 < ratio < 0.08


def test_dc_fast_day_counts_are_overdispersed_and_home_is_poisson() -> None:
    dc = simulate("dc_fast").counts
    home = simulate("home").counts
    # NB(mean 8, k 4): variance/mean = 1 + 8/4 = 3. Poisson: 1. The home estimate from 36k
    # charger-days has sd ~0.01; the DC one, from 364 shared day factors, ~0.25.
    assert dc.var() / dc.mean() > 2.0
    assert home.var() / home.mean() == pytest.approx(1.0, abs=0.1)


def test_site_day_factors_are_shared_by_the_site() -> None:
    same_site = simulate("dc_fast").counts
    other_site = simulate("dc_fast", site="elsewhere").counts
    unshared = simulate("dc_fast", site="site", shared_factors=False).counts
    # Two chargers sharing a Gamma(4) day factor: corr = var(rate)/var(count) = 16/24 = 0.67;
    # chargers of different sites, or with per-charger factors, are independent (sd ~0.05).
    assert np.corrcoef(same_site[0], same_site[1])[0, 1] > 0.45
    assert abs(np.corrcoef(same_site[0], other_site[0])[0, 1]) < 0.2
    assert abs(np.corrcoef(unshared[0], unshared[1])[0, 1]) < 0.2
    assert unshared.var() / unshared.mean() > 2.0


def test_depot_vans_depart_at_quarter_past_eight() -> None:
    s = simulate("depot_van")
    departure = np.asarray(CAL.local_hour(s.arrival_s + s.dwell_h * 3600.0))
    returned = s.local_hour
    # 50 vans x 260 weekdays: the mean departure has sd 0.004 h, so ±0.05 h (3 min) is ample
    # and an hour's offset (UTC, or a DST slip) fails. The sd is 0.42 h less ~1.5 % from the
    # ±3 sd clip.
    assert departure.mean() == pytest.approx(8.25, abs=0.05)
    assert departure.std() == pytest.approx(0.42, rel=0.15)
    # Back after 8.3 ± 1.35 h on the road.
    assert returned.mean() == pytest.approx(8.25 + 8.3, abs=0.1)
    assert returned.std() == pytest.approx(np.hypot(0.42, 1.35), rel=0.15)
    # 47 km at 0.40 kWh/km.
    assert np.median(s.energy_kwh) == pytest.approx(47 * 0.40, rel=0.05)
    assert not s.weekend.any()
