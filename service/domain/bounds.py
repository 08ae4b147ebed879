"""Every bound an event's fields are held to before they reach the folds, and why.

Whatever `consumers.decode` accepts, the folds and the database must accept: a value outside
these bounds is dead-lettered by `service.domain.validation`, never folded. The table columns
(`service.adapters.tables`) are sized from the same constants, so the two cannot drift.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

# --- strings -------------------------------------------------------------------------------

ID_MAX_LENGTH = 200
"""Ids (event, user, trip, challenge, session, path, step, attempt, task) and group labels:
1 to 200 characters. Producers send UUIDs (36) or short slugs; 200 leaves room for composed
ids and is the width of the `Id` columns, where a longer value fails rather than being cut."""

ID_MAX_BYTES = 600
"""An id is also at most 600 bytes of UTF-8. The widest key (an attempt or a correction:
tenant, session, user, attempt) holds four ids, and a PostgreSQL B-tree entry holds at most
2,704 bytes: four 600-byte ids fit, four 200-character ids of 4-byte characters (3,200 bytes)
do not. Only an id of more than 150 characters from the emoji planes meets this bound."""

TENANT_ID_MAX_LENGTH = 180
"""Tenant ids are shorter than other ids: a tenant's state versions are keyed by the tenant id
plus a suffix (`service.app.state_versions`, 14 characters at most for months before 2200) in
an `Id` column. 180 leaves a few characters spare for a future suffix."""

NAME_MAX_LENGTH = 200
"""A user's firstname, lastname and pseudo: the width of their columns; names are shown in
every ranking, so a longer one is a producer's mistake, not a name."""

EMAIL_MAX_LENGTH = 320
"""An email, and also its lower-cased form (stored for case-insensitive lookups; lower-casing
can lengthen a string, 'İ' becoming two characters): RFC 5321's 64-character local part, '@'
and 255-character domain; the width of the email columns."""

TEXT_MAX_LENGTH = 2_000
"""Free text (a challenge's title, a path session's name, a task's failure reason): stored as
unbounded text, but every answer about the entity carries it, so one event must not make all
of them heavy. 2,000 characters is ten times a long title."""

REASON_MAX_LENGTH = 1_000
"""A dead letter's reason is cut to this many characters: it names the field and the problem;
an error message quoting a whole malformed value must still be storable and readable."""

# No string (id or text) may hold a NUL character: PostgreSQL text cannot store it, and SQLite
# would store what PostgreSQL refuses, so the two databases would disagree.

# --- collections ---------------------------------------------------------------------------

MAX_GROUPS = 1_000
"""Group labels of one user or one challenge. Each becomes a row rewritten whenever the entity
is re-published; a thousand is more groups than any team has, and bounds that cost."""

MAX_STEPS = 1_000
"""Steps of one path session: they are stored as one JSON document read by every stats
answer of the session; a thousand steps is far beyond any learning path."""

# --- times and durations -------------------------------------------------------------------

TIME_MIN = datetime(1970, 1, 1, tzinfo=UTC)
"""The earliest time an event may carry (inclusive), the Kafka record's timestamp (the arrival
time) included: Kafka timestamps start at the epoch (-1 means 'none'), and no trip, challenge
or learning session of the platform predates it."""

TIME_MAX = datetime(2200, 1, 1, tzinfo=UTC)
"""The first time an event may not carry. The rules add to times (next month, end + late-event
grace, enrolment + due delay) and subtract from them (start - pre-challenge period); Python's
datetime ends with year 9999, and 2200 keeps every such sum far below it while accepting any
real schedule. (Instants are stored as int64 microseconds, good to year 294,247.)"""

DURATION_MAX = timedelta(days=3_660)
"""The longest duration (pre-challenge period, a step's due delay and time limit), from 0: ten
years and their leap days. Longer is a producer's mistake; with times before 2200 it keeps
every sum of a time and a duration before 2211."""

# --- numbers -------------------------------------------------------------------------------

TRIP_DISTANCE_MAX_KM = 10_000.0
"""A trip's distance, finite, from 0: a day at 400 km/h is 9,600 km. Times a score (at most
10) one trip weighs under 10^5 in the exact sums, which keep every figure within the bounds
exactly (`service.domain.exact.DIGITS` says how many digits that takes)."""

CHALLENGE_MIN_DISTANCE_MAX_KM = 1_000_000.0
"""A challenge's minimum distance, finite, from 0: 25 times round the Earth per driver is
beyond any challenge."""

TRIP_SCORE_RANGE = (0.0, 10.0)
"""A trip's scores (docs/rules.md#bounds), finite."""

STEP_SCORE_RANGE = (0.0, 100.0)
"""A step attempt's or correction's score and a step's minimum score (docs/rules.md#bounds),
finite."""

TIME_SPENT_MAX_MS = DURATION_MAX // timedelta(milliseconds=1)
"""Time spent on one attempt, from 0: at most `DURATION_MAX`, like every duration. A
learner's `globalTime` sums them in an int64."""

# Counts (min_trips, pre_challenge_min_trips, nb_items, nb_remaining_items, max_attempts) are
# int32 on the wire, like their columns; the rules only need them to be at least 0.
