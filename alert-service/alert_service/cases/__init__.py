"""Cases: an analyst's work items made of alerts, closed with a verdict that labels them.

`store` keeps the cases (one open case per user, append-only history), `quality` the
per-rule counters and the labels the verdicts give, `paging` the cursor of the case
list, `bodies` the request bodies and `api` the routes (``/api/v1/cases*``,
``/api/v1/rules/quality``, ``/api/v1/labels``).
"""
