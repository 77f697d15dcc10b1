"""Locustfile: load one OpenAI-compatible server (e.g. vLLM on :8000).

    locust -f loadgen/single.py --headless -u 8 -r 8 -t 60s --host http://127.0.0.1:8000 --results-dir out
"""

from llm_dvfs.loadgen.user import LlmUser


class SingleServerUser(LlmUser):
    pass
