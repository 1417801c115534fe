"""The read side: every number the analytics API, the dashboard and the CSV exports show.

Follow a number from the staff's screen down to SQL, one module at a time:

    conversations/views.py, conversations/analytics_apis.py   parse the request once (forms, serializers)
      -> query.py      Period, Filters, Granularity: what is asked (the window rules live here)
      -> selectors.py  summary(), topic_breakdown(), timeseries(), dashboard(): plain results
      -> planner.py    which rollup rows and raw edge rows make up a window (pure Python)
      -> reads.py      one SQL statement per request from a plan; rows back into Totals
      -> metrics.py    Totals: the stored figures of a set of conversations and every metric
                       derived from them (rates, means, p95, money), each defined once
      -> figures.py    the registry: one declaration per additive figure, from which the rollup
                       columns, the SQL, the ORM full scans and Totals' fields are derived
      -> tables.py     which metrics each answer and export shows, under which names

Writes live elsewhere: conversations/services.py (conversations) and conversations/rollups.py
(the rollup rows, from the same figure declarations).

Import from the modules, not from this package: `models` builds its rollup columns from
`figures`, so this file imports nothing.
"""
