"""Seeded random streams keyed by (scenario seed, site, charger index) or (seed, site, purpose).

Each stream is derived directly from its key, never from a shared counter, so a charger's draws
are the same however many chargers exist or however the fleet is sharded. No global RNG state.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

# Site-level streams mix this word into their entropy. Charger seeds use the bare scenario seed,
# and SeedSequence pads short entropy with zeros before appending the spawn key, so a non-zero
# word here keeps a site stream from ever coinciding with a charger stream of the same site.
_SITE_DOMAIN = 0x51_7E_5E_ED


def _crc(text: str) -> int:
    # crc32 rather than hash(): str hashes are salted per process (PYTHONHASHSEED), so they
    # would give each worker process a different fleet.
    return zlib.crc32(text.encode("utf-8"))


def charger_seed(seed: int, site: str, index: int) -> np.random.SeedSequence:
    """The root seed of one charger: `seed` must be a non-negative int, `index` >= 0."""
    return np.random.SeedSequence(entropy=seed, spawn_key=(_crc(site), index))


@dataclass(frozen=True)
class ChargerStreams:
    """The independent random streams one charger owns.

    `arrivals` drives when EVs come, `sessions` what each EV wants (vehicle, energy, stay), and
    `misc` everything else (faults, per-charger jitter), so that adding draws to one concern
    does not shift the numbers another concern sees.
    """

    arrivals: np.random.Generator
    sessions: np.random.Generator
    misc: np.random.Generator


def charger_streams(seed: int, site: str, index: int) -> ChargerStreams:
    """Fresh PCG64 streams of charger `index` of `site` under scenario `seed`."""
    arrivals, sessions, misc = (
        np.random.default_rng(child) for child in charger_seed(seed, site, index).spawn(3)
    )
    return ChargerStreams(arrivals=arrivals, sessions=sessions, misc=misc)


def site_seed(seed: int, site: str, purpose: str, *extra: int) -> np.random.SeedSequence:
    """Seed of a site-level stream; `extra` non-negative ints key sub-streams (e.g. a block)."""
    return np.random.SeedSequence(
        entropy=(seed, _SITE_DOMAIN), spawn_key=(_crc(site), _crc(purpose), *extra)
    )


def site_stream(seed: int, site: str, purpose: str) -> np.random.Generator:
    """A PCG64 stream shared by a whole site for one purpose, e.g. "day_factor"."""
    return np.random.default_rng(site_seed(seed, site, purpose))
