"""The benchmark suite behind ``make bench`` (``python -m tools.bench``; never in ``make test``).

Parts, each selectable with ``--only``: single POSTs (closed loop at 8/32/128 clients and
an open loop at a fixed offered rate), batches of 100 and 1,000, the detector draining a
preloaded backlog with one and two processes, POST->decision, POST->alert and inline
decision latency at a fixed offered rate, and the broker's CPU while the stack is idle.
Every part also records CPU seconds and peak RSS per process (`processes`). Without URLs
it starts the local stack itself (`tools.stack.DevStack`, as ``make dev`` does, on free
ports) and stops it after; it only ever talks to loopback addresses, and every part is
bounded in time and count.
"""
