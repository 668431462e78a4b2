"""The serving process's garbage-collector thresholds.

CPython's cyclic collector runs a young collection every 700 net allocations, and a full
one once the objects promoted since the last full one reach a quarter of the long-lived
ones. A server holding 20,000 subscriptions keeps ~3 million long-lived objects; the
frequent young collections catch each delivery's objects still in flight and promote
them, so a burst of 20,000 deliveries set off full collections of 2 to 6 seconds each on
a busy 2-core machine, the event loop stalled and /healthz waited as long. With a young
collection every 50,000 allocations, those objects die by reference counting first:
server CPU per delivery went from 0.094 to 0.051 ms with 20,000 subscriptions
(`scripts/watch_latency.py --burst --watchers 20000`) and from 0.093 to 0.079 ms with
1,000 watchers. Cycles are still collected, a little later; the cost is at most some
tens of thousands of young objects alive a little longer.
"""

import gc

THRESHOLDS = (50_000, 20, 10)


def tune_for_serving() -> None:
    """Set THRESHOLDS for this process (each `serve` process, each worker)."""
    gc.set_threshold(*THRESHOLDS)
