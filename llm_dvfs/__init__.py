"""llm-dvfs: what LLM serving costs in watts and joules, phase by phase.

The parts live in top-level folders of the checkout (`exporter/`, `loadgen/`, `serving/`, `analysis/`) and are
installed as `llm_dvfs.exporter`, `llm_dvfs.loadgen`, … (setuptools `package-dir`). When this file is imported
from a checkout instead of an installed copy (Locust and `python -m` put the current directory first on
`sys.path`), those folders sit beside this one, not inside it: adding the checkout to this package's search path
lets `llm_dvfs.exporter` resolve there too, so the checkout never hides the parts.
"""

from pathlib import Path

__version__ = "0.1.0"

PARTS = ("exporter", "loadgen", "serving", "analysis")

_checkout = Path(__file__).resolve().parent.parent
if not (Path(__file__).parent / "exporter").is_dir() and all(
        (_checkout / part / "__init__.py").is_file() for part in PARTS):
    __path__.append(str(_checkout))  # type: ignore[name-defined]  # noqa: F821
