"""Load generator: streaming OpenAI-compatible requests measured the way `vllm bench serve` measures them.

The measurement core (sse, http1, timing, request, datasets, arrivals, stats, results, metrics, energy) knows
nothing of Locust; `user`, `plugin` and `distributed` wire it into Locust; `single.py` and `disagg.py` are the
locustfiles.
"""
