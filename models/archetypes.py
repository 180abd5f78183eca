"""Site archetypes: validated demand parameter sets (pydantic) and the six bundled defaults.

Figures from docs `demand-defaults.md`, sources cited per archetype, assumptions marked as such.
Parameters only: it must not draw EVs (that is `models.demand`) nor read files or scenarios.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Self, TypeVar, cast

from pydantic import BaseModel, ConfigDict, Field, model_validator

from models.profiles import (
    DC_FAST_SHARES,
    HOME_WEEKDAY_SHARES,
    HOME_WEEKEND_SHARES,
    PUBLIC_AC_WEEKDAY_SHARES,
    PUBLIC_AC_WEEKEND_SHARES,
    WORKPLACE_WEEKDAY_SHARES,
)

_FROZEN = ConfigDict(extra="forbid", frozen=True)

Share = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Probability = Annotated[float, Field(gt=0, lt=1)]
PositiveValue = Annotated[float, Field(gt=0, allow_inf_nan=False)]
QuantilePoint = tuple[Probability, PositiveValue]
Shares24 = Annotated[
    tuple[Share, ...],
    Field(min_length=24, max_length=24),
]

# Published quantiles, (probability, value). Where ElaadNL gives no quantile below the median,
# the lower ones mirror the upper ones in log space (p25 = median²/p75, p10 = median²/p90):
# an assumption of local log-symmetry, i.e. a lognormal-like body.
HOME_ENERGY_KWH: tuple[tuple[float, float], ...] = (
    (0.25, 8.2),
    (0.5, 19.4),
    (0.75, 35.8),
    (0.9, 51.4),
)
WORKPLACE_ENERGY_KWH: tuple[tuple[float, float], ...] = (
    (0.1, round(8.8**2 / 26.1, 3)),
    (0.25, round(8.8**2 / 16.7, 3)),
    (0.5, 8.8),
    (0.75, 16.7),
    (0.9, 26.1),
)
PUBLIC_AC_ENERGY_KWH: tuple[tuple[float, float], ...] = (
    (0.1, round(7.2**2 / 29.0, 3)),
    (0.25, round(7.2**2 / 13.8, 3)),
    (0.5, 7.2),
    (0.75, 13.8),
    (0.9, 29.0),
)
DC_FAST_ENERGY_KWH: tuple[tuple[float, float], ...] = ((0.1, 7.1), (0.5, 19.1), (0.9, 40.8))

HOME_CONNECTION_H: tuple[tuple[float, float], ...] = ((0.25, 4.2), (0.5, 11.0), (0.75, 14.6))
# Workplace connection time normally comes from the arrival-hour mixture below; these ElaadNL
# quantiles (p25 mirrored) are what a scenario gets if it switches the mixture off.
WORKPLACE_CONNECTION_H: tuple[tuple[float, float], ...] = (
    (0.25, round(4.9**2 / 8.5, 3)),
    (0.5, 4.9),
    (0.75, 8.5),
)
# ElaadNL gives only p25 and the median: p75 mirrors p25 in log space (assumption).
PUBLIC_AC_CONNECTION_H: tuple[tuple[float, float], ...] = (
    (0.25, 1.7),
    (0.5, 4.4),
    (0.75, round(4.4**2 / 1.7, 3)),
)
DC_FAST_CONNECTION_H: tuple[tuple[float, float], ...] = ((0.1, 20 / 60), (0.5, 0.75), (0.9, 1.3))


class MixtureComponent(BaseModel):
    """One behaviour class of a connection-time mixture: when it arrives and how long it stays."""

    model_config = _FROZEN

    weight: float = Field(
        default=1.0, gt=0, allow_inf_nan=False, description="Relative prior weight."
    )
    start_hour_mean: float = Field(
        default=8.0, ge=0, le=24, description="Mean local arrival hour of this class (hours, 0-24)."
    )
    start_hour_sd: float = Field(
        default=1.0, gt=0, le=24, description="Standard deviation of the arrival hour (hours)."
    )
    stay_h_mean: float = Field(
        default=8.0, ge=0.25, le=72, description="Mean connection time (hours) before truncation."
    )
    stay_h_sd: float = Field(
        default=1.0, gt=0, le=72, description="Standard deviation of the connection time (hours)."
    )


def _check_quantiles(name: str, points: tuple[tuple[float, float], ...]) -> None:
    # Checked here rather than with min_length, whose message miscounts when an item is invalid.
    if len(points) < 2:
        raise ValueError(f"{name}: needs at least two [probability, value] points")
    probs = [p for p, _ in points]
    values = [v for _, v in points]
    if any(b <= a for a, b in itertools.pairwise(probs)):
        raise ValueError(f"{name}: probabilities must strictly increase, got {probs}")
    if any(b < a for a, b in itertools.pairwise(values)):
        raise ValueError(f"{name}: values must not decrease with probability, got {values}")


class DemandParams(BaseModel):
    """Stochastic passenger-car demand at one site: when EVs arrive and what each one wants.

    Arrivals per charger and local day are Poisson with mean `sessions_per_charger_day` (times
    `weekend_factor` on Saturdays and Sundays, times the site's day factor when
    `overdispersion_k` is set), spread over the day by the hourly shares. Each EV's energy and
    connection time come from quantile distributions joined by a Gaussian copula. The defaults
    are the `home` archetype.
    """

    model_config = _FROZEN

    kind: Literal["stochastic"] = Field(
        default="stochastic", description="Discriminator: stochastic passenger-car demand."
    )
    sessions_per_charger_day: float = Field(
        default=0.8, ge=0, le=1000, description="Mean EV arrivals per charger on a weekday."
    )
    weekday_shares: Shares24 = Field(
        default=HOME_WEEKDAY_SHARES,
        description="24 non-negative weights of weekday arrivals per local hour, hour 00 first.",
    )
    weekend_shares: Shares24 = Field(
        default=HOME_WEEKEND_SHARES,
        description="24 non-negative weights of weekend arrivals per local hour, hour 00 first.",
    )
    weekend_factor: float = Field(
        default=1.0, ge=0, le=100, description="Weekend arrival rate divided by the weekday rate."
    )
    overdispersion_k: float | None = Field(
        default=None,
        gt=0,
        description=(
            "None: Poisson day counts. A number k: each day's rate is multiplied by a site-wide "
            "day factor ~ Gamma(k, 1/k), so one charger's day count is negative binomial "
            "(variance = mean + mean²/k)."
        ),
    )
    energy_kwh: tuple[QuantilePoint, ...] = Field(
        default=HOME_ENERGY_KWH,
        description="Quantiles [probability, kWh] of the energy an EV wants (at least two).",
    )
    connection_h: tuple[QuantilePoint, ...] = Field(
        default=HOME_CONNECTION_H,
        description="Quantiles [probability, hours] of the planned connection time (at least two).",
    )
    energy_connection_correlation: float = Field(
        default=0.4,
        ge=-1,
        le=1,
        description=(
            "Gaussian-copula correlation between energy and connection time (an assumption: "
            "the sources publish marginals only)."
        ),
    )
    soc_target_min: float = Field(
        default=0.8, gt=0, le=1, description="Lower end of the uniform target SoC at departure."
    )
    soc_target_max: float = Field(
        default=1.0, gt=0, le=1, description="Upper end of the uniform target SoC at departure."
    )
    ac_taper_soc_min: float = Field(
        default=0.7, gt=0, le=1, description="Lower end of the uniform AC taper SoC (EV2Gym: 0.7)."
    )
    ac_taper_soc_max: float = Field(
        default=0.9, gt=0, le=1, description="Upper end of the uniform AC taper SoC (EV2Gym: 0.9)."
    )
    min_soc_arrival: float = Field(
        default=0.05,
        ge=0,
        lt=1,
        description="Lowest SoC an EV arrives with; energy is capped to fit.",
    )
    patience_min: float = Field(
        default=0.0, ge=0, description="Minutes an EV waits for a free connector before leaving."
    )
    departure: Literal["planned", "when_charged"] = Field(
        default="planned",
        description=(
            "planned: the driver leaves after the drawn connection time. when_charged: the "
            "driver unplugs `handling_min` after charging ends (capped by the connection time)."
        ),
    )
    handling_min: float = Field(
        default=0.0,
        ge=0,
        description="Minutes between end of charging and unplugging (when_charged).",
    )
    connection_mixture: tuple[MixtureComponent, ...] | None = Field(
        default=None,
        min_length=1,
        description=(
            "When set, connection time depends on the arrival hour: a component is chosen with "
            "probability ∝ weight × NormalPDF(arrival hour; start_hour_mean, start_hour_sd), "
            "then the stay is normal(stay_h_mean, stay_h_sd) truncated to ≥ 0.25 h."
        ),
    )

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        for name in ("weekday_shares", "weekend_shares"):
            if sum(getattr(self, name)) <= 0:
                raise ValueError(f"{name} must have a positive sum")
        _check_quantiles("energy_kwh", self.energy_kwh)
        _check_quantiles("connection_h", self.connection_h)
        if self.soc_target_min > self.soc_target_max:
            raise ValueError("soc_target_min must not exceed soc_target_max")
        if self.ac_taper_soc_min > self.ac_taper_soc_max:
            raise ValueError("ac_taper_soc_min must not exceed ac_taper_soc_max")
        if self.min_soc_arrival >= self.soc_target_min:
            raise ValueError("min_soc_arrival must be below soc_target_min")
        return self


class NormalHours(BaseModel):
    """A time in hours drawn from a normal distribution, clipped to mean ± 3 sd."""

    model_config = _FROZEN

    kind: Literal["normal"] = Field(default="normal", description="Discriminator: normal.")
    mean_h: float = Field(default=8.25, ge=0, le=24, description="Mean, hours.")
    sd_h: float = Field(default=0.42, ge=0, le=12, description="Standard deviation, hours.")


class UniformHours(BaseModel):
    """A time in hours drawn uniformly between two bounds."""

    model_config = _FROZEN

    kind: Literal["uniform"] = Field(default="uniform", description="Discriminator: uniform.")
    low_h: float = Field(default=3.0, ge=0, le=24, description="Lower bound, hours.")
    high_h: float = Field(default=4.85, ge=0, le=24, description="Upper bound, hours.")

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.low_h > self.high_h:
            raise ValueError("low_h must not exceed high_h")
        return self


HoursDistribution = Annotated[NormalHours | UniformHours, Field(discriminator="kind")]


class DepotParams(BaseModel):
    """A scheduled fleet charging at its depot: one vehicle per charger, one return per day.

    The vehicle leaves at `departure_h` (local clock) on each operating day and comes back
    either `trip_h` hours later or at the clock time `return_h` (exactly one of the two is set).
    It plugs in on return and stays until its next departure, wanting the energy of the day's
    kilometres. The defaults are the SpiceEV delivery-van example.
    """

    model_config = _FROZEN

    kind: Literal["depot"] = Field(
        default="depot", description="Discriminator: scheduled depot fleet."
    )
    vehicle: Literal["van", "bus"] = Field(
        default="van", description="Depot vehicle model (key of models.vehicles.DEPOT_VEHICLES)."
    )
    departure_h: HoursDistribution = Field(
        default_factory=lambda: NormalHours(mean_h=8.25, sd_h=0.42),
        description="Local clock hour of the daily departure.",
    )
    trip_h: HoursDistribution | None = Field(
        default_factory=lambda: NormalHours(mean_h=8.3, sd_h=1.35),
        description="Hours on the road after departure (set this or return_h).",
    )
    return_h: HoursDistribution | None = Field(
        default=None, description="Local clock hour of return (set this or trip_h)."
    )
    daily_km_mean: float = Field(
        default=47.0, ge=0, le=2000, description="Mean distance per day, km."
    )
    daily_km_sd: float = Field(default=20.0, ge=0, le=2000, description="Std. dev. of daily km.")
    consumption_kwh_per_km: float = Field(
        default=0.40, gt=0, le=10, description="Energy used per km driven, kWh/km."
    )
    soc_target: float = Field(default=1.0, gt=0, le=1, description="SoC the vehicle charges to.")
    min_soc_arrival: float = Field(
        default=0.05,
        ge=0,
        lt=1,
        description="Lowest SoC the vehicle returns with; energy is capped.",
    )
    ac_taper_soc: float = Field(default=0.8, gt=0, le=1, description="AC taper SoC (ACN-Sim: 0.8).")
    operating_days: Literal["all", "weekdays"] = Field(
        default="weekdays", description="Days the vehicle goes out: every day, or Monday-Friday."
    )
    patience_min: float = Field(
        default=120.0, ge=0, description="Minutes the vehicle waits for a free connector."
    )

    @model_validator(mode="after")
    def _one_return_model(self) -> Self:
        if (self.trip_h is None) == (self.return_h is None):
            raise ValueError("set exactly one of trip_h and return_h")
        if self.min_soc_arrival >= self.soc_target:
            raise ValueError("min_soc_arrival must be below soc_target")
        return self


SiteParams = Annotated[DemandParams | DepotParams, Field(discriminator="kind")]
"""Either parameter kind, told apart by `kind` (for scenario models)."""

P = TypeVar("P", bound=DemandParams | DepotParams)


@dataclass(frozen=True, slots=True)
class ChargerDefaults:
    """The charger hardware an archetype's sites get unless the scenario says otherwise."""

    kind: Literal["ac", "dc"]
    power_kw: float
    phases: int
    connectors: int


@dataclass(frozen=True, slots=True)
class Archetype:
    """A named, documented bundle of demand parameters and default hardware for one site type."""

    name: str
    description: str
    params: DemandParams | DepotParams
    sources: str
    default_charger: ChargerDefaults
    # Private chargers belong to one car (a home wallbox, a depot bay): an EV never takes
    # another charger of the site. Shared ones (car parks, public posts) take any free one.
    private_chargers: bool = False


# Workplace connection time as a function of arrival hour, after the evsim JPL model
# (mcanigueral/evsim): a "worktime" class arriving around 07:00 and staying ~10 h, and three
# "visit" classes around 07:30, 12:15 and 15:20. evsim's stays and weights were refitted
# offline (once, by Nelder-Mead on the exact marginal: arrival hour from the ElaadNL workplace
# profile, uniform within the hour; least squares on log median and log p75, with a small
# penalty pulling every parameter towards the evsim values) so that the marginal connection
# time matches ElaadNL workplace: median 4.9 h, p75 8.5 h (fit: 4.92 h and 8.47 h). Start-hour
# and stay spreads are assumptions (evsim publishes the centres only). Resulting effective
# shares over the profile: worktime 27 %, visits 30 / 31 / 11 %.
WORKPLACE_MIXTURE: tuple[MixtureComponent, ...] = (
    MixtureComponent(
        weight=0.53, start_hour_mean=7.0, start_hour_sd=0.75, stay_h_mean=9.97, stay_h_sd=1.25
    ),
    MixtureComponent(
        weight=0.21, start_hour_mean=7.5, start_hour_sd=1.0, stay_h_mean=4.18, stay_h_sd=2.0
    ),
    MixtureComponent(
        weight=0.16, start_hour_mean=12.25, start_hour_sd=1.5, stay_h_mean=4.16, stay_h_sd=2.0
    ),
    MixtureComponent(
        weight=0.10, start_hour_mean=15.33, start_hour_sd=1.5, stay_h_mean=2.47, stay_h_sd=1.5
    ),
)

_ELAAD = "ElaadNL via EV2Gym ev2gym/data (arrival shares, energy, connection time)"

# Assumptions (the sources give no figure): arrival rates per charger and day (home 0.8,
# workplace 1.2, public AC 1.6, DC 8); weekend factors (home, public AC and DC 1.0, workplace
# 0.05 for "only a few percent"); DC overdispersion k = 4 (variance/mean 3 at 8 a day); copula
# rho 0.4 on AC, 0.6 on DC where the stay is mostly charging; AC target SoC U(0.8, 1.0); patience
# (home 0: a private driveway has no queue; 10-15 min in public; 2 h for a depot vehicle). DC
# drivers leave at the end of the drawn connection time by default, so the ACN-Data connection
# times are reproduced; "when_charged" (with its 3 min handling) is the corridor alternative.

HOME = DemandParams()
WORKPLACE = DemandParams(
    sessions_per_charger_day=1.2,
    weekday_shares=WORKPLACE_WEEKDAY_SHARES,
    weekend_shares=WORKPLACE_WEEKDAY_SHARES,
    weekend_factor=0.05,
    energy_kwh=WORKPLACE_ENERGY_KWH,
    connection_h=WORKPLACE_CONNECTION_H,
    patience_min=15.0,
    connection_mixture=WORKPLACE_MIXTURE,
)
PUBLIC_AC = DemandParams(
    sessions_per_charger_day=1.6,
    weekday_shares=PUBLIC_AC_WEEKDAY_SHARES,
    weekend_shares=PUBLIC_AC_WEEKEND_SHARES,
    energy_kwh=PUBLIC_AC_ENERGY_KWH,
    connection_h=PUBLIC_AC_CONNECTION_H,
    patience_min=10.0,
)
DC_FAST = DemandParams(
    sessions_per_charger_day=8.0,
    weekday_shares=DC_FAST_SHARES,
    weekend_shares=DC_FAST_SHARES,
    overdispersion_k=4.0,
    energy_kwh=DC_FAST_ENERGY_KWH,
    connection_h=DC_FAST_CONNECTION_H,
    energy_connection_correlation=0.6,
    soc_target_min=0.80,
    soc_target_max=0.95,
    patience_min=15.0,
    handling_min=3.0,
)
DEPOT_VAN = DepotParams()
DEPOT_BUS = DepotParams(
    vehicle="bus",
    departure_h=UniformHours(low_h=3.0, high_h=4.85),
    trip_h=None,
    return_h=UniformHours(low_h=19.75, high_h=22.0 + 43 / 60),
    daily_km_mean=200.0,
    daily_km_sd=40.0,
    consumption_kwh_per_km=1.2,
    operating_days="all",
)

ARCHETYPES: dict[str, Archetype] = {
    "home": Archetype(
        name="home",
        description="Private home charger: evening arrivals, overnight stays.",
        params=HOME,
        sources=_ELAAD + ". Rate 0.8/day and weekend factor 1.0 are assumptions.",
        default_charger=ChargerDefaults(kind="ac", power_kw=11.0, phases=3, connectors=1),
        private_chargers=True,
    ),
    "workplace": Archetype(
        name="workplace",
        description="Office car park: morning arrivals, working-day stays, quiet weekends.",
        params=WORKPLACE,
        sources=(
            _ELAAD + "; connection-time mixture structure from evsim JPL (mcanigueral/evsim), "
            "refitted to ElaadNL. Rate 1.2/day and weekend factor 0.05 are assumptions; the "
            "weekend reuses the weekday shape."
        ),
        default_charger=ChargerDefaults(kind="ac", power_kw=11.0, phases=3, connectors=2),
    ),
    "public_ac": Archetype(
        name="public_ac",
        description="On-street public AC post: daytime visits and evening residents.",
        params=PUBLIC_AC,
        sources=_ELAAD + ". Rate 1.6/day and weekend factor 1.0 are assumptions.",
        default_charger=ChargerDefaults(kind="ac", power_kw=22.0, phases=3, connectors=2),
    ),
    "dc_fast": Archetype(
        name="dc_fast",
        description="Public 50 kW DC charger: short stops all day, overdispersed day counts.",
        params=DC_FAST,
        sources=(
            "Arrival shape, energy and connection time: one public DC charger in ACN-Data "
            "(Caltech, 2020-21), cf. Hecht et al., iScience 2022; target SoC U(0.80, 0.95) from "
            "SimBEV. Rate 8/day, overdispersion k = 4 and copula rho 0.6 are assumptions."
        ),
        default_charger=ChargerDefaults(kind="dc", power_kw=50.0, phases=3, connectors=1),
    ),
    "depot_van": Archetype(
        name="depot_van",
        description="Delivery-van depot: out 08:15 for ~8 h on weekdays, back to charge to full.",
        params=DEPOT_VAN,
        sources=(
            "SpiceEV example (76 kWh van, 40 kWh/100 km, 47 ± 20 km/day, depart 08:15 ± 0.42 h, "
            "drive 8.3 ± 1.35 h, leave with SoC ≥ 0.8; charging to 1.0 meets it). Weekday-only "
            "operation is an assumption."
        ),
        default_charger=ChargerDefaults(kind="ac", power_kw=11.0, phases=3, connectors=1),
        private_chargers=True,
    ),
    "depot_bus": Archetype(
        name="depot_bus",
        description="Bus depot: out 03:00-04:51, back 19:45-22:43 every day, charge to full.",
        params=DEPOT_BUS,
        sources=(
            "SimBA example (depot 150 kW, leave U(03:00, 04:51), return U(19:45, 22:43), target "
            "SoC 1.0). Daily 200 ± 40 km at 1.2 kWh/km is an assumption."
        ),
        default_charger=ChargerDefaults(kind="dc", power_kw=150.0, phases=3, connectors=1),
        private_chargers=True,
    ),
}


def get_archetype(name: str) -> Archetype:
    """The bundled archetype called `name`; KeyError lists the known names."""
    try:
        return ARCHETYPES[name]
    except KeyError:
        known = ", ".join(sorted(ARCHETYPES))
        raise KeyError(f"unknown archetype {name!r}; known: {known}") from None


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _deep_merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        current = merged.get(key)
        # A sub-model whose discriminator changes (normal -> uniform) is replaced, not merged:
        # the old kind's fields would otherwise be rejected as extra fields of the new kind.
        same_kind = not (
            isinstance(current, dict)
            and isinstance(value, Mapping)
            and "kind" in value
            and value["kind"] != current.get("kind")
        )
        if isinstance(current, dict) and isinstance(value, Mapping) and same_kind:
            merged[key] = _deep_merge(current, value)
        else:
            merged[key] = _plain(value)
    return merged


def with_overrides(params: P, overrides: Mapping[str, Any]) -> P:
    """A copy of `params` with `overrides` deep-merged in and re-validated.

    Nested mappings merge key by key; anything else (numbers, lists, None) replaces the value.
    A pydantic ValidationError propagates unchanged, its `loc` naming the offending field path.
    """
    merged = _deep_merge(params.model_dump(), overrides)
    return cast(P, type(params).model_validate(merged))
