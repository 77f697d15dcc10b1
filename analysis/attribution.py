"""Split the energy of any load between prefill and decode, from request timelines and the energy series.

The model (docs/phase-energy.md says why, and where it breaks): cut the window into intervals of `bin_s`; in each,
the energy above idle is E_k = a·X_k + b·Y_k + noise, where X_k is the prompt tokens in prefill during the interval
(each request's prompt spread evenly from its send to its first token) and Y_k the decode tokens that arrived in it
(every output token after the first, which the prefill step itself produces). a and b are fitted by non-negative
least squares without an intercept. Each interval's measured energy above idle is then split in the ratio
a·X_k : b·Y_k, so prefill + decode + idle (+ energy above idle in intervals with nothing in flight, kept apart as
"unattributed") add up to the measured energy exactly. Uncertainty: a moving-block bootstrap over intervals refits
a and b and re-splits.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import chain
from typing import Iterable, Sequence

import numpy as np

from llm_dvfs.analysis.energy import unwrap_counter
from llm_dvfs.analysis.samples import Samples
from llm_dvfs.loadgen.results import RequestResult

METHOD = "interval regression"
DEFAULT_BIN_S = 0.5
BOOTSTRAP_RESAMPLES = 200
BLOCK_S = 5.0  # bootstrap block length: longer than the power sensor's and the batch scheduler's memory
IDLE_QUANTILE = 5  # percent: the idle power of a run recorded without an idle window


@dataclass(frozen=True)
class Idle:
    watts: float | None
    source: str


@dataclass(frozen=True)
class Intervals:
    """The regression's data: interval edges, prefill tokens X, decode tokens Y and energy E (J) per interval."""

    edges: np.ndarray
    prefill_tokens: np.ndarray
    decode_tokens: np.ndarray
    energy: np.ndarray

    @property
    def seconds(self) -> np.ndarray:
        return np.diff(self.edges)


@dataclass
class Attribution:
    """The split of one window's energy, and how well the model fitted it."""

    method: str
    window_s: float
    energy_joules: float
    idle: Idle
    prefill_joules: float
    decode_joules: float
    idle_joules: float
    unattributed_joules: float
    prompt_tokens: float
    decode_tokens: float
    coef_prompt: float  # a: fitted marginal J per prompt token
    coef_decode: float  # b: fitted marginal J per decode token
    r2: float | None
    intervals: int
    bin_s: float
    regressor_correlation: float | None
    ci95: dict[str, tuple[float, float]] = field(default_factory=dict)

    @property
    def joules_per_prompt_token(self) -> float | None:
        return self.prefill_joules / self.prompt_tokens if self.prompt_tokens else None

    @property
    def joules_per_output_token(self) -> float | None:
        return self.decode_joules / self.decode_tokens if self.decode_tokens else None

    @property
    def degenerate(self) -> bool:
        """Both phases ran but the fit priced one at zero: the intervals could not tell the phases apart."""
        return self.prompt_tokens > 0 and self.decode_tokens > 0 and (self.coef_prompt == 0 or self.coef_decode == 0)

    def shares(self) -> dict[str, float | None]:
        total = self.energy_joules
        parts = {"prefill": self.prefill_joules, "decode": self.decode_joules, "idle": self.idle_joules,
                 "unattributed": self.unattributed_joules}
        return {k: (v / total if total else None) for k, v in parts.items()}

    def to_json(self) -> dict:
        shares = self.shares()
        return {
            "method": self.method, "window_s": self.window_s, "energy_joules": self.energy_joules,
            "prefill_joules": self.prefill_joules, "decode_joules": self.decode_joules,
            "idle_joules": self.idle_joules, "unattributed_joules": self.unattributed_joules,
            "prefill_share": shares["prefill"], "decode_share": shares["decode"], "idle_share": shares["idle"],
            "joules_per_prompt_token": self.joules_per_prompt_token,
            "joules_per_output_token": self.joules_per_output_token,
            "prompt_tokens": self.prompt_tokens, "decode_tokens": self.decode_tokens,
            "idle_watts": self.idle.watts, "idle_source": self.idle.source,
            "fit": {"joules_per_prompt_token": self.coef_prompt, "joules_per_decode_token": self.coef_decode,
                    "r2": self.r2, "intervals": self.intervals, "interval_s": self.bin_s,
                    "regressor_correlation": self.regressor_correlation, "degenerate": self.degenerate},
            "ci95": {k: list(v) for k, v in self.ci95.items()},
        }


# -- the data -----------------------------------------------------------------------------------------------------
def _boxcar_integral(edges: np.ndarray, starts: np.ndarray, ends: np.ndarray, amounts: np.ndarray) -> np.ndarray:
    """Per interval, the amount each [start, end) spreads evenly over itself (zero-length spans: at their start)."""
    out = np.zeros(len(edges) - 1)
    point = ends <= starts
    if point.any():
        idx = np.searchsorted(edges, starts[point], side="right") - 1
        ok = (idx >= 0) & (idx < len(out))
        np.add.at(out, idx[ok], amounts[point][ok])
    s, e, a = starts[~point], ends[~point], amounts[~point]
    if len(s):
        rate = a / (e - s)

        def cumulative(t: np.ndarray, at: np.ndarray, w: np.ndarray) -> np.ndarray:
            """Σ w·(t − at) over the at < t: the integral of ramps that begin at `at`."""
            order = np.argsort(at)
            at, w = at[order], w[order]
            cw, cwa = np.concatenate([[0], np.cumsum(w)]), np.concatenate([[0], np.cumsum(w * at)])
            k = np.searchsorted(at, t, side="left")
            return cw[k] * t - cwa[k]

        c = cumulative(edges, s, rate) - cumulative(edges, e, rate)
        out += np.diff(c)
    return out


def _decode_tokens(edges: np.ndarray, requests: Sequence[RequestResult], batch: int = 5_000) -> np.ndarray:
    """Per interval, the output tokens after the first whose chunk arrived in it (chunks share tokens evenly).
    Requests go through numpy in batches: one flat array of gaps per batch, summed within each request."""
    out = np.zeros(len(edges) - 1)
    streams = [r for r in requests
               if r.success and r.ttft_s is not None and (r.output_tokens or 0) >= 2 and r.itl_s]
    for k in range(0, len(streams), batch):
        part = streams[k:k + batch]
        lens = np.fromiter((len(r.itl_s) for r in part), dtype=np.int64, count=len(part))
        gaps = np.fromiter(chain.from_iterable(r.itl_s for r in part), dtype=float, count=int(lens.sum()))
        within = np.cumsum(gaps)
        before = np.concatenate([[0.0], within])[np.repeat(np.cumsum(lens) - lens, lens)]
        first = np.fromiter((r.start_time + r.ttft_s for r in part), dtype=float, count=len(part))
        share = np.fromiter(((r.output_tokens - 1) / len(r.itl_s) for r in part), dtype=float, count=len(part))
        arrivals = np.repeat(first, lens) + within - before
        idx = np.searchsorted(edges, arrivals, side="right") - 1
        ok = (idx >= 0) & (idx < len(out))
        out += np.bincount(idx[ok], weights=np.repeat(share, lens)[ok], minlength=len(out))
    return out


def cumulative_energy(samples: Samples, gpus: Iterable[int]) -> tuple[np.ndarray, np.ndarray] | None:
    """(times, joules since the first reading) summed over `gpus`: the counter where a GPU has one, else its
    integrated power; None when no GPU has either."""
    ts_all = np.asarray(samples.timestamps, dtype=float)
    total: np.ndarray | None = None
    for g in gpus:
        counter = samples.series(g, "energy_j")
        pairs = [(t, v) for t, v in zip(samples.timestamps, counter) if v is not None]
        if len(pairs) >= 2:
            t, v = np.array([p[0] for p in pairs]), np.array(unwrap_counter([p[1] for p in pairs]))
        else:
            power = [(t, p) for t, p in zip(samples.timestamps, samples.series(g, "power")) if p is not None]
            if len(power) < 2:
                continue
            t, p = np.array([x[0] for x in power]), np.array([x[1] for x in power])
            v = np.concatenate([[0], np.cumsum(np.diff(t) * (p[1:] + p[:-1]) / 2)])
        on_grid = np.interp(ts_all, t, v)
        total = on_grid if total is None else total + on_grid
    return None if total is None else (ts_all, total)


def intervals(requests: Sequence[RequestResult], samples: Samples, t0: float, t1: float,
              bin_s: float = DEFAULT_BIN_S, gpus: Iterable[int] | None = None) -> Intervals | None:
    """The regression's data over [t0, t1]; None when there is no energy reading or under one interval."""
    energy = cumulative_energy(samples, samples.gpus if gpus is None else gpus)
    if energy is None:
        return None
    times, joules = energy
    t0, t1 = max(t0, float(times[0])), min(t1, float(times[-1]))
    if t1 - t0 < bin_s:
        return None
    edges = t0 + bin_s * np.arange(int((t1 - t0) // bin_s) + 1)
    if t1 - edges[-1] > 1e-6 * bin_s:
        edges = np.append(edges, t1)  # a shorter last interval: the whole window, as the level's energy is
    ok = [r for r in requests if r.success and r.ttft_s is not None]
    starts = np.array([r.start_time for r in ok])
    # the prefill ends at the first token; disaggregated, at the end of the proxy's prefill hop (`prefill_s`)
    firsts = starts + np.array([r.prefill_s if r.prefill_s is not None and 0 <= r.prefill_s <= r.ttft_s
                                else r.ttft_s for r in ok])
    prompts = np.array([float(r.prompt_tokens or 0) for r in ok])
    x = _boxcar_integral(edges, starts, firsts, prompts) if ok else np.zeros(n)
    return Intervals(edges, x, _decode_tokens(edges, ok), np.diff(np.interp(edges, times, joules)))


# -- idle power ------------------------------------------------------------------------------------------------
def idle_power(samples: Samples, gpus: Iterable[int], load_start: float | None, margin_s: float = 0.3,
               min_samples: int = 5) -> Idle:
    """Idle watts summed over `gpus`: the median power recorded before the load began (an idle window), else
    the run's 5th-percentile power, and which of the two it is."""
    gpus = list(gpus)
    ts = np.asarray(samples.timestamps, dtype=float)
    per_gpu_pre, per_gpu_low = [], []
    for g in gpus:
        p = np.array([np.nan if v is None else v for v in samples.series(g, "power")], dtype=float)
        valid = ~np.isnan(p)
        if not valid.any():
            return Idle(None, "no power readings")
        pre = valid & (ts < load_start - margin_s) if load_start is not None else np.zeros_like(valid)
        per_gpu_pre.append(np.median(p[pre]) if pre.sum() >= min_samples else None)
        per_gpu_low.append(float(np.percentile(p[valid], IDLE_QUANTILE)))
    if all(v is not None for v in per_gpu_pre):
        n = int((ts < load_start - margin_s).sum()) if load_start is not None else 0
        return Idle(float(sum(per_gpu_pre)), f"median power of the {n} samples before the load (idle window)")
    return Idle(float(sum(per_gpu_low)), f"{IDLE_QUANTILE}th percentile of the recording's power "
                f"(no idle window before the load)")


# -- the fit ---------------------------------------------------------------------------------------------------
def nnls2(x: np.ndarray, y: np.ndarray, e: np.ndarray) -> tuple[float, float]:
    """min ‖a·x + b·y − e‖ over a, b ≥ 0: the unconstrained solution when it is non-negative, else the better
    one-regressor fit (closed form; two columns need no iterative solver)."""
    candidates = [(0.0, 0.0)]
    sxx, syy, sxy = float(x @ x), float(y @ y), float(x @ y)
    sxe, sye = float(x @ e), float(y @ e)
    det = sxx * syy - sxy * sxy
    if det > 1e-12 * max(sxx * syy, 1e-300):
        a, b = (syy * sxe - sxy * sye) / det, (sxx * sye - sxy * sxe) / det
        if a >= 0 and b >= 0:
            return a, b
    if sxx > 0:
        candidates.append((max(0.0, sxe / sxx), 0.0))
    if syy > 0:
        candidates.append((0.0, max(0.0, sye / syy)))
    return min(candidates, key=lambda ab: float(np.sum((ab[0] * x + ab[1] * y - e) ** 2)))


def _split(x: np.ndarray, y: np.ndarray, above: np.ndarray, a: float, b: float) -> tuple[float, float, float]:
    """(prefill J, decode J, unattributed J): each interval's energy above idle in the ratio a·x : b·y."""
    px, dy = a * x, b * y
    weight = px + dy
    active = weight > 0
    frac = np.divide(px, weight, out=np.zeros_like(weight), where=active)
    return (float(np.sum(above[active] * frac[active])), float(np.sum(above[active] * (1 - frac[active]))),
            float(np.sum(above[~active])))


def _blocks(n: int, block: int, rng: np.random.Generator) -> np.ndarray:
    starts = rng.integers(0, max(1, n - block + 1), size=int(np.ceil(n / block)))
    return (starts[:, None] + np.arange(block)[None, :]).ravel()[:n] % n


def attribute(data: Intervals, idle: Idle, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0) -> Attribution:
    """Fit and split; `idle.watts` None counts all energy as above idle (and says so in the method)."""
    x, y, e, dt = data.prefill_tokens, data.decode_tokens, data.energy, data.seconds
    idle_w = idle.watts or 0.0
    above = e - idle_w * dt
    a, b = nnls2(x, y, above)
    prefill, decode, unattributed = _split(x, y, above, a, b)
    # R² of the power above idle, each interval weighted by its length (the last one may be short)
    resid = above - a * x - b * y
    mean_w = float(above.sum() / dt.sum())
    ss_tot = float(np.sum(dt * (above / dt - mean_w) ** 2))
    r2 = 1 - float(np.sum(resid ** 2 / dt)) / ss_tot if ss_tot > 0 else None
    corr = float(np.corrcoef(x, y)[0, 1]) if x.std() > 0 and y.std() > 0 else None
    prompt, decoded = float(x.sum()), float(y.sum())
    bin_s = float(np.median(dt)) if len(dt) else DEFAULT_BIN_S
    result = Attribution(METHOD if idle.watts is not None else METHOD + " (no idle power: all energy counted)",
                         float(dt.sum()), float(e.sum()), idle, prefill, decode, idle_w * float(dt.sum()),
                         unattributed, prompt, decoded, a, b, r2, len(e), bin_s, corr)
    if resamples and len(e) >= 4:
        rng = np.random.default_rng(seed)
        block = max(1, min(len(e) // 2, round(BLOCK_S / bin_s)))
        draws = {k: [] for k in ("prefill_joules", "decode_joules", "joules_per_prompt_token",
                                 "joules_per_output_token", "prefill_share", "decode_share")}
        for _ in range(resamples):
            idx = _blocks(len(e), block, rng)
            ra, rb = nnls2(x[idx], y[idx], above[idx])
            p, d, _ = _split(x, y, above, ra, rb)
            draws["prefill_joules"].append(p)
            draws["decode_joules"].append(d)
            draws["joules_per_prompt_token"].append(p / prompt if prompt else np.nan)
            draws["joules_per_output_token"].append(d / decoded if decoded else np.nan)
            draws["prefill_share"].append(p / result.energy_joules if result.energy_joules else np.nan)
            draws["decode_share"].append(d / result.energy_joules if result.energy_joules else np.nan)
        for k, v in draws.items():
            arr = np.asarray(v, dtype=float)
            arr = arr[~np.isnan(arr)]
            if len(arr):
                result.ci95[k] = (float(np.percentile(arr, 2.5)), float(np.percentile(arr, 97.5)))
    return result
