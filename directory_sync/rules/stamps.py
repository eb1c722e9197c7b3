"""Change stamps: when they can be read as times, an entry stamped during the last read is read again."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

# LDAP GeneralizedTime (RFC 4517): modifyTimestamp, whenChanged, and the time part of OpenLDAP's entryCSN.
_GENERALIZED = re.compile(r"^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})?(?:[.,](\d+))?(Z|[+-]\d{4})")


def stamp_time(stamp: str) -> datetime | None:
    """The time a change stamp stands for, or None when it is not a time (a USN, an opaque value)."""
    match = _GENERALIZED.match(stamp.strip())
    if match is None:
        return None
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    try:
        moment = datetime(
            int(year), int(month), int(day), int(hour), int(minute), int(second or 0), tzinfo=UTC
        )
    except ValueError:
        return None
    if fraction:
        moment += timedelta(microseconds=int(fraction[:6].ljust(6, "0")))
    if zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        moment -= sign * timedelta(hours=int(zone[1:3]), minutes=int(zone[3:5]))
    return moment


def may_have_changed_since(stamp: str, moment: datetime | None) -> bool:
    """Whether an entry with this stamp may have changed again after it was read at moment.

    Stamps like modifyTimestamp have one-second resolution: an entry changed twice within the second of the
    last read keeps its stamp. Entries stamped at or after (that second, less a margin) are read again.
    """
    if moment is None:
        return False
    when = stamp_time(stamp)
    return when is not None and when >= moment - timedelta(seconds=2)
