"""Locustfile: load the disaggregated prefill/decode proxy; each request also records the proxy's prefill time.

    locust -f loadgen/disagg.py --headless -u 8 -r 8 -t 60s --host http://127.0.0.1:8000 --results-dir out
"""

from llm_dvfs.loadgen.user import LlmUser


class DisaggregatedUser(LlmUser):
    prefill_header = "X-Prefill-Seconds"
