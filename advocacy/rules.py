"""The thresholds of advocate suggestions (R14), in one place.

They are workspace-wide constants rather than brand settings: a suggestion is
only a suggestion (a person confirms or dismisses every one), so a threshold
that is a little off costs a click, not a wrong tag.

- A contact with at least POSITIVE_MESSAGES positive inbound messages within the
  last WINDOW_DAYS is suggested.
- So is a contact with at least DEFENCES defences within the window: a positive
  public message in a thread where another customer complained (that customer's
  conversation in the thread is negative), or a positive reply to another
  customer's negative message.
- A dismissed contact comes back only when evidence found after the dismissal
  (a new message) still makes the thresholds.
"""

from datetime import timedelta

POSITIVE_MESSAGES = 3
DEFENCES = 1
WINDOW_DAYS = 90
WINDOW = timedelta(days=WINDOW_DAYS)
# How many message ids before the scan's mark are read again on the next periodic
# scan: an inbound transaction that got its id before the mark may commit after
# the scan read past it. Evidence is unique per message, so a re-read adds nothing.
RESCAN_OVERLAP = 1000
# Evidence messages shown per advocate in the report and the API.
EVIDENCE_SHOWN = 5
