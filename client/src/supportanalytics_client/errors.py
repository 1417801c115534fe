"""The client's exceptions."""

from __future__ import annotations


class SupportAnalyticsError(Exception):
    """The server could not answer (get_summary), or the tracker is set up wrong."""


class SpoolFull(SupportAnalyticsError):
    """The spool reached its size cap (or the disk is full): the call stored nothing, and
    nothing stored before was dropped. Raised instead of losing a conversation silently."""
