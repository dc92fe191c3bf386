"""Labelled traffic: many ordinary users, some travellers, and injected fraud patterns.

Pure and deterministic: `generate` with the same `Plan` gives the same transactions,
in the same order, with the same labels (a `random.Random` seeded from the plan, no
clock). Event times fall in ``[start - span, start]``; the sender posts them in
event-time order at whatever rate it is asked to.

Ordinary users live in a home metro and shop at a few places there (each with its
coordinates, sent as latitude/longitude, so no place name is ambiguous), with their
own typical amount (log-normal around a personal median, in the home currency), a
few transactions a day and never two within two minutes. Travellers take one trip to
another metro; no transaction falls within the flight (distance at 700 km/h plus 90
minutes), so their travel is possible. A rare big purchase (up to 5,000 USD) is legit.

Fraud patterns, one episode per fraud user, labelled ``fraud`` (everything else is
``legit``); ordinary activity of that user is kept out of the hour around it:

- ``card_testing``: 8-12 charges of 0.50-2.00 USD, 15-40 s apart, at home;
- ``account_takeover``: after a genuine purchase at home, 2-3 purchases of 300-2,000
  USD in a metro at least 3,000 km away within 5-30 minutes (the account is then
  locked: no later activity);
- ``cash_out``: 4-6 transfers of 1,500-4,000 USD, 5-12 minutes apart, at home;
- ``large_transfer``: one transfer of 12,000-60,000 USD at home;
- ``burst``: 8-12 purchases of 10-200 USD within 20-40 s, at home.

`TARGETS` names the rule type each pattern is meant for (the shipped rules have only
some of them: see the scorecard).
"""

from __future__ import annotations

import bisect
import math
import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

PATTERNS = ("card_testing", "account_takeover", "cash_out", "large_transfer", "burst")
TARGETS = {
    "card_testing": "card_testing",
    "account_takeover": "location_change",
    "cash_out": "amount_velocity",
    "large_transfer": "large_amount",
    "burst": "rapid_transactions",
}
"""The rule type each pattern is built to trip."""
BENIGN = "benign"
TRAVEL = "travel"
_ID_NAMESPACE = uuid.UUID("9a3e6c0f-51d2-4b8e-a7f4-2c6d8e1b0f35")
MIN_GAP = timedelta(minutes=2)
FLIGHT_KMH = 700.0
QUIET = timedelta(hours=1)


@dataclass(frozen=True)
class Place:
    name: str
    latitude: float
    longitude: float


@dataclass(frozen=True)
class Metro:
    currency: str
    usd_per_unit: float
    """Rough, only to keep ordinary amounts ordinary (the service stamps the real value)."""
    places: tuple[Place, ...]


METROS: tuple[Metro, ...] = (
    Metro("USD", 1.0, (Place("New York", 40.7128, -74.0060), Place("Brooklyn", 40.6782, -73.9442), Place("Jersey City", 40.7178, -74.0431))),  # noqa: E501
    Metro("GBP", 1.25, (Place("London", 51.5074, -0.1278), Place("Croydon", 51.3762, -0.0982), Place("Watford", 51.6565, -0.3903))),  # noqa: E501
    Metro("EUR", 1.08, (Place("Paris", 48.8566, 2.3522), Place("Versailles", 48.8049, 2.1204), Place("Saint-Denis", 48.9362, 2.3574))),  # noqa: E501
    Metro("EUR", 1.08, (Place("Berlin", 52.5200, 13.4050), Place("Potsdam", 52.3906, 13.0645))),
    Metro("JPY", 0.0067, (Place("Tokyo", 35.6762, 139.6503), Place("Yokohama", 35.4437, 139.6380), Place("Kawasaki", 35.5308, 139.7029))),  # noqa: E501
    Metro("AUD", 0.65, (Place("Sydney", -33.8688, 151.2093), Place("Parramatta", -33.8150, 151.0011))),  # noqa: E501
    Metro("CAD", 0.73, (Place("Toronto", 43.6532, -79.3832), Place("Mississauga", 43.5890, -79.6441))),  # noqa: E501
    Metro("USD", 1.0, (Place("Chicago", 41.8781, -87.6298), Place("Evanston", 42.0451, -87.6877))),
    Metro("USD", 1.0, (Place("San Francisco", 37.7749, -122.4194), Place("Oakland", 37.8044, -122.2712))),  # noqa: E501
    Metro("SGD", 0.74, (Place("Singapore", 1.3521, 103.8198),)),
    Metro("EUR", 1.08, (Place("Madrid", 40.4168, -3.7038), Place("Getafe", 40.3083, -3.7329))),
    Metro("INR", 0.012, (Place("Mumbai", 19.0760, 72.8777), Place("Thane", 19.2183, 72.9781))),
)  # fmt: skip


@dataclass(frozen=True)
class Plan:
    seed: int
    users: int
    transactions: int
    start: datetime
    """The end of the simulated period (the latest event time)."""
    span: timedelta = timedelta(hours=24)
    fraud_share: float = 0.05
    """Share of users with one injected episode (at least one user per pattern)."""
    user_prefix: str | None = None
    """User ids are ``<prefix>-<n>``; default ``sim<seed>``."""

    @property
    def prefix(self) -> str:
        return self.user_prefix or f"sim{self.seed}"


@dataclass(frozen=True)
class SimTransaction:
    ref: str
    """A deterministic id (uuid5 of the plan and the index): the transactionId written
    when nothing is sent; once sent, the service's id takes its place."""
    user_id: str
    label: str
    pattern: str
    body: dict[str, Any]
    """The POST body (event time in ``timestamp``)."""
    at: datetime
    episode: str | None = None
    """``<userId>/<pattern>`` for an injected episode's transactions."""


_Row = tuple[datetime, str, int, str, str, dict[str, Any], str | None]
"""(event time, userId, order within the user, label, pattern, POST body, episode)."""


@dataclass
class _User:
    user_id: str
    home: Metro
    places: tuple[Place, ...]
    median_usd: float
    sigma: float
    pattern: str | None
    traveller: bool


def distance_km(a: Place, b: Place) -> float:
    """Great-circle distance (haversine, mean Earth radius)."""
    p1, p2 = math.radians(a.latitude), math.radians(b.latitude)
    dp, dl = p2 - p1, math.radians(b.longitude - a.longitude)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6371.0088 * math.asin(math.sqrt(h))


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _money(value: float) -> str:
    return str(Decimal(str(round(value, 2))).quantize(Decimal("0.01")))


def _body(place: Place, amount: str, currency: str, at: datetime, user: str) -> dict[str, Any]:
    return {
        "userId": user,
        "amount": amount,
        "currency": currency,
        "location": place.name,
        "latitude": place.latitude,
        "longitude": place.longitude,
        "timestamp": _iso(at),
    }


def _users(plan: Plan, rng: random.Random) -> list[_User]:
    fraud_count = min(plan.users, max(len(PATTERNS), round(plan.users * plan.fraud_share)))
    fraud_slots = set(rng.sample(range(plan.users), fraud_count))
    patterns = iter(PATTERNS[i % len(PATTERNS)] for i in range(fraud_count))
    users = []
    for n in range(plan.users):
        home = rng.choice(METROS)
        places = tuple(rng.sample(home.places, k=min(len(home.places), rng.randint(1, 3))))
        users.append(
            _User(
                user_id=f"{plan.prefix}-{n:05d}",
                home=home,
                places=places,
                median_usd=math.exp(rng.uniform(2.3, 5.0)),  # about 10 to 150 USD
                sigma=rng.uniform(0.4, 0.9),
                pattern=next(patterns) if n in fraud_slots else None,
                traveller=n not in fraud_slots and rng.random() < 0.1,
            )
        )
    return users


def _episode(
    user: _User, at: datetime, rng: random.Random
) -> list[tuple[datetime, Place, str, str]]:
    """(event time, place, amount, currency) of one injected episode; the first entry of
    an account takeover is the owner's genuine purchase (labelled legit by the caller)."""
    home = rng.choice(user.places)
    steps: list[tuple[datetime, Place, str, str]] = []
    if user.pattern == "card_testing":
        moment = at
        for _ in range(rng.randint(8, 12)):
            steps.append((moment, home, _money(rng.uniform(0.5, 2.0)), "USD"))
            moment += timedelta(seconds=rng.uniform(15, 40))
    elif user.pattern == "account_takeover":
        steps.append((at, home, _money(user.median_usd), "USD"))
        far = [m for m in METROS if distance_km(m.places[0], home) >= 3000]
        target = rng.choice(far).places[0]
        moment = at + timedelta(minutes=rng.uniform(5, 30))
        for _ in range(rng.randint(2, 3)):
            steps.append((moment, target, _money(rng.uniform(300, 2000)), "USD"))
            moment += timedelta(minutes=rng.uniform(2, 10))
    elif user.pattern == "cash_out":
        moment = at
        for _ in range(rng.randint(4, 6)):
            steps.append((moment, home, _money(rng.uniform(1500, 4000)), "USD"))
            moment += timedelta(minutes=rng.uniform(5, 12))
    elif user.pattern == "large_transfer":
        steps.append((at, home, _money(rng.uniform(12000, 60000)), "USD"))
    elif user.pattern == "burst":
        count = rng.randint(8, 12)
        length = rng.uniform(20, 40)
        for i in range(count):
            moment = at + timedelta(seconds=length * i / (count - 1))
            steps.append((moment, home, _money(rng.uniform(10, 200)), "USD"))
    return steps


def _ordinary_times(
    count: int,
    begin: datetime,
    end: datetime,
    forbidden: Sequence[tuple[datetime, datetime]],
    rng: random.Random,
) -> list[datetime]:
    """``count`` event times in ``[begin, end]``, at least `MIN_GAP` apart, none inside
    a ``forbidden`` interval (fewer only when they do not fit)."""
    seconds = (end - begin).total_seconds()
    times: list[datetime] = []
    for _ in range(count * 50):
        if len(times) == count:
            break
        moment = begin + timedelta(seconds=rng.uniform(0, seconds))
        if any(low <= moment <= high for low, high in forbidden):
            continue
        at = bisect.bisect(times, moment)
        if (at > 0 and moment - times[at - 1] < MIN_GAP) or (
            at < len(times) and times[at] - moment < MIN_GAP
        ):
            continue
        times.insert(at, moment)
    return times


def _ordinary_amount(user: _User, rng: random.Random) -> tuple[str, str]:
    if rng.random() < 0.003:  # a rare big purchase, still legit
        usd = rng.uniform(2000, 5000)
    else:
        usd = min(rng.lognormvariate(math.log(user.median_usd), user.sigma), 1500.0)
    local = max(usd / user.home.usd_per_unit, 0.5)
    return (_money(local) if user.home.currency != "JPY" else str(round(local))), user.home.currency


def generate(plan: Plan) -> list[SimTransaction]:
    """The plan's transactions in event-time order (see the module docstring)."""
    if plan.users < len(PATTERNS):
        raise ValueError(f"at least {len(PATTERNS)} users (one per pattern)")
    rng = random.Random(plan.seed)  # noqa: S311 - repeatable traffic, not secrets
    begin = plan.start - plan.span
    users = _users(plan, rng)
    rows: list[_Row] = []
    quiet: dict[str, tuple[datetime, datetime]] = {}
    for user in users:
        if user.pattern is None:
            continue
        latest = plan.start - timedelta(hours=1)
        at = begin + (latest - begin) * rng.uniform(0.3, 1.0)
        steps = _episode(user, at, rng)
        episode = f"{user.user_id}/{user.pattern}"
        for i, (moment, place, amount, currency) in enumerate(steps):
            genuine = user.pattern == "account_takeover" and i == 0
            rows.append(
                (
                    moment,
                    user.user_id,
                    i,
                    "legit" if genuine else "fraud",
                    BENIGN if genuine else user.pattern,
                    _body(place, amount, currency, moment, user.user_id),
                    None if genuine else episode,
                )
            )
        ends = steps[-1][0] + QUIET
        if user.pattern == "account_takeover":
            ends = plan.start + timedelta(days=1)  # locked after the takeover
        quiet[user.user_id] = (steps[0][0] - QUIET, ends)
    remaining = plan.transactions - len(rows)
    if remaining < 0:
        raise ValueError(f"at least {len(rows)} transactions for these users' patterns")
    shares = rng.choices(
        range(len(users)), weights=[rng.uniform(0.5, 2) for _ in users], k=remaining
    )
    counts = [0] * len(users)
    for index in shares:
        counts[index] += 1
    for user, count in zip(users, counts, strict=True):
        rows.extend(_ordinary(user, count, begin, plan.start, quiet.get(user.user_id), rng))
    rows.sort(key=lambda r: (r[0], r[1], r[2]))
    stamp = _iso(plan.start)
    return [
        SimTransaction(
            ref=str(uuid.uuid5(_ID_NAMESPACE, f"{plan.seed}:{plan.prefix}:{stamp}:{n}")),
            user_id=user_id,
            label=label,
            pattern=pattern,
            body=body,
            at=moment,
            episode=episode,
        )
        for n, (moment, user_id, _i, label, pattern, body, episode) in enumerate(rows)
    ]


def _ordinary(
    user: _User,
    count: int,
    begin: datetime,
    end: datetime,
    quiet: tuple[datetime, datetime] | None,
    rng: random.Random,
) -> list[_Row]:
    forbidden = [] if quiet is None else [quiet]
    trip: tuple[datetime, Place] | None = None
    if user.traveller:
        away = rng.choice([m for m in METROS if m is not user.home]).places[0]
        departs = begin + (end - begin) * rng.uniform(0.1, 0.5)
        flight = timedelta(hours=distance_km(user.places[0], away) / FLIGHT_KMH + 1.5)
        if departs + flight < end:  # nothing while in the air, abroad after landing
            trip = (departs + flight, away)
            forbidden.append((departs, departs + flight))
    rows: list[_Row] = []
    for i, moment in enumerate(_ordinary_times(count, begin, end, forbidden, rng)):
        abroad = trip is not None and moment >= trip[0]
        place = trip[1] if trip is not None and abroad else rng.choice(user.places)
        amount, currency = _ordinary_amount(user, rng)
        rows.append(
            (
                moment,
                user.user_id,
                100 + i,
                "legit",
                TRAVEL if user.traveller else BENIGN,
                _body(place, amount, currency, moment, user.user_id),
                None,
            )
        )
    return rows
