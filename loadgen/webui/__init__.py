"""The "Energy" view in Locust's web UI: watts per GPU, joules per token and request, latencies, clocks and
throttle reasons, live during a test, from data the load generator and the exporters already have.

`routes.add_energy_view(environment, loadgen)` is called from the load generator's `init` listener when Locust runs
its web UI; `figures` and `gpus` are pure, `live` gathers one point a second off the timed path.
"""
