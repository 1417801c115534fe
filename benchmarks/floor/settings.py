"""The app's settings, with the floor benchmark's URLs in front (benchmarks/floor.py)."""

from supportanalytics.settings import *  # noqa: F403

ROOT_URLCONF = "floor.urls"
