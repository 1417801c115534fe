"""Support Analytics' bot-side client: a drop-in for the tutorial's tracker.

`tracker = AnalyticsTracker()` (configured by SUPPORTANALYTICS_URL and SUPPORTANALYTICS_API_KEY),
then `tracker.log_conversation("abc-123", 4, True, ["billing"], [820, 1140], csat=5)`.
"""

from supportanalytics_client._spool import DeadLetter
from supportanalytics_client._tracker import AnalyticsTracker
from supportanalytics_client._version import __version__
from supportanalytics_client.errors import SpoolFull, SupportAnalyticsError

__all__ = ["AnalyticsTracker", "DeadLetter", "SpoolFull", "SupportAnalyticsError", "__version__"]
