"""The Energy view in a real headless chromium, against real Locust runs with its web UI, a replaying exporter
(a real H100 trace that hits its power cap) and the scripted SSE server: the view appears in Locust's page and at
/energy, its numbers change while the test runs, and when the test stops they are results.json's, whose files it
offers for download."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Callable, TypeVar

import pytest
import requests
from selenium.common.exceptions import StaleElementReferenceException
from tests.support import free_port, wait_until

from tests.loadgen.scripted_server import Script, ScriptedServer
from tests.loadgen.webui_run import (DISAGG_TRACE, H100_MOSTLY_CAPPED_FROM_ROW, H100_TRACE, browser_available,
                                     headless_chromium, locust_web, replay_exporter, trace_slice)

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not browser_available(), reason="needs chromium and chromedriver "
                                 "(scripts/setup_env.sh installs them)")]
SERVED = Script(ttft=0.05, itl=0.02, tokens=20)
#: where the run that makes README's screenshot saves it (unset: only the test's own copy in tmp_path)
SCREENSHOT = os.environ.get("LLM_DVFS_ENERGY_SCREENSHOT")


def processes(n: int) -> list[str]:
    """`--processes n` on a master port of its own (the default 5557 may be taken by another run)."""
    port = str(free_port())
    return ["--processes", str(n), "--master-bind-host", "127.0.0.1", "--master-bind-port", port,
            "--master-port", port]


T = TypeVar("T")


def fresh(read: Callable[[], T], tries: int = 10) -> T:
    """The view re-renders once a second: a read that met an element just replaced is read again."""
    for attempt in range(tries):
        try:
            return read()
        except StaleElementReferenceException:
            if attempt == tries - 1:
                raise
            time.sleep(0.1)
    raise AssertionError("unreachable")


def card(driver, key: str) -> tuple[str, float | None]:
    """(text shown, raw number) of the view's card for `key`."""
    def read() -> tuple[str, float | None]:
        value = driver.find_element("css selector", f'.card[data-key="{key}"] .value')
        raw = value.get_attribute("data-value")
        return value.text, float(raw) if raw else None
    return fresh(read)


def state(driver) -> str:
    return fresh(lambda: driver.find_element("id", "state").text.lower())


def test_energy_view_live_then_results_json(tmp_path):
    out = tmp_path / "run"
    capped = trace_slice(H100_TRACE, H100_MOSTLY_CAPPED_FROM_ROW, 100, tmp_path / "h100-capped.csv")
    with ScriptedServer(SERVED) as server, replay_exporter(capped) as exporter, \
            locust_web(server.url, out, "--exporter-url", exporter, run_time="12s") as base, \
            headless_chromium() as driver:
        # Locust's own page has the Energy tab, its table filled from /stats/requests
        driver.get(base + "/?tab=energy")
        assert wait_until(lambda: "Energy" in driver.find_element("tag name", "body").text, timeout=20)
        assert wait_until(lambda: "J per output token" in driver.find_element("tag name", "body").text,
                          timeout=20), driver.find_element("tag name", "body").text[-2000:]

        driver.get(base + "/energy")
        assert wait_until(lambda: state(driver) == "running" and card(driver, "completed")[1], timeout=20)
        completed, joules = card(driver, "completed")[1], card(driver, "energy_joules")[1]
        assert wait_until(lambda: card(driver, "completed")[1] > completed and state(driver) == "running",
                          timeout=10), "the numbers did not change while the test ran"
        assert card(driver, "energy_joules")[1] > joules
        watts_text, watts = card(driver, "watts_total")
        assert 100 < watts < 1000 and watts_text.endswith(" W")  # an H100 under load, from the replay
        rows = fresh(lambda: [(r.get_attribute("data-gpu"), r.text)
                              for r in driver.find_elements("css selector", "#gpus tbody tr")])
        assert [gpu for gpu, _ in rows] == ["gpu 0"]
        assert "MHz" in rows[0][1] and "700 W" in rows[0][1]  # clocks and the power limit
        assert driver.find_element("id", "notice").get_attribute("hidden")  # an exporter is configured
        # every chart has drawn a line by now
        for chart in ("chart-watts", "chart-jpt", "chart-tps", "chart-ttft", "chart-itl"):
            assert driver.find_elements("css selector", f"#{chart} path"), chart
        # the trace's GPU hits its power cap during the sweep: the view names the throttle reason when active
        seen_cap = wait_until(lambda: "sw_power_cap" in fresh(lambda: driver.find_element("id", "gpus").text),
                              timeout=15)
        if seen_cap and SCREENSHOT:
            Path(SCREENSHOT).parent.mkdir(parents=True, exist_ok=True)
            driver.save_screenshot(SCREENSHOT)

        assert wait_until(lambda: state(driver) == "stopped" and driver.find_elements("css selector", "a.download"),
                          timeout=40), "no downloads after the test stopped"
        time.sleep(1.5)  # one more refresh, then the page must hold results.json's figures
        summary = json.loads((out / "results.json").read_text())
        for key in ("completed", "energy_joules", "joules_per_output_token", "joules_per_request",
                    "output_throughput", "median_ttft_ms", "p99_ttft_ms", "median_itl_ms", "p99_itl_ms"):
            text, raw = card(driver, key)
            assert raw == pytest.approx(summary[key], rel=1e-12), key
            assert text != "—"
            sub = fresh(lambda: driver.find_element("css selector", f'.card[data-key="{key}"] .sub').text)
            assert sub == "results.json", key
        _, per_prompt = card(driver, "joules_per_prompt_token")
        assert per_prompt is None and "phase" in card(driver, "joules_per_prompt_token")[0]
        links = fresh(lambda: {a.text: a.get_attribute("href")
                               for a in driver.find_elements("css selector", "a.download")})
        assert set(links) == {"Download results.json", "Download requests.jsonl"}
        assert requests.get(links["Download results.json"], timeout=10).json() == summary
        assert requests.get(links["Download requests.jsonl"], timeout=10).text == (out / "requests.jsonl").read_text()
        driver.save_screenshot(str(tmp_path / "energy-view.png"))
    assert seen_cap, "sw_power_cap never showed, though the replayed H100 was power-capped"


def test_without_exporter_the_view_says_how_to_start_one(tmp_path):
    with ScriptedServer(SERVED) as server, locust_web(server.url, tmp_path / "run", run_time="4s") as base, \
            headless_chromium() as driver:
        driver.get(base + "/energy")
        assert wait_until(lambda: card(driver, "completed")[1], timeout=20)
        notice = driver.find_element("id", "notice")
        assert notice.is_displayed() and "llm-dvfs exporter" in notice.text and "--exporter-url" in notice.text
        for key in ("watts_total", "energy_joules", "joules_per_output_token", "joules_per_request"):
            assert not driver.find_element("css selector", f'.card[data-key="{key}"]').is_displayed(), key
        assert not driver.find_element("id", "chart-watts").is_displayed()
        assert card(driver, "output_throughput")[1] > 0  # the rest of the view still works


def test_disaggregated_with_processes_shows_roles_and_sum(tmp_path):
    """--processes 2: the master has the web UI and every worker's requests; the disaggregated locustfile's GPUs
    are shown by role (GPU 0 prefill, GPU 1 decode), with their sum."""
    out = tmp_path / "run"
    with ScriptedServer(SERVED) as server, replay_exporter(DISAGG_TRACE) as exporter, \
            locust_web(server.url, out, "--exporter-url", exporter, *processes(2), run_time="10s",
                       users=4, locustfile="loadgen/disagg.py") as base, headless_chromium() as driver:
        driver.get(base + "/energy")
        assert wait_until(lambda: state(driver) == "running" and (card(driver, "completed")[1] or 0) > 0,
                          timeout=30)
        rows = fresh(lambda: {r.get_attribute("data-gpu"): r.text
                              for r in driver.find_elements("css selector", "#gpus tbody tr")})
        assert set(rows) == {"gpu 0", "gpu 1"}
        assert "prefill" in rows["gpu 0"] and "decode" in rows["gpu 1"]
        legend = fresh(lambda: driver.find_element("id", "chart-watts").text)
        assert "gpu 0 (prefill)" in legend and "gpu 1 (decode)" in legend and "sum" in legend
        assert wait_until(lambda: state(driver) == "stopped" and driver.find_elements("css selector", "a.download"),
                          timeout=60)
        time.sleep(1.5)
        summary = json.loads((out / "results.json").read_text())
        for key in ("completed", "energy_joules", "joules_per_output_token"):
            assert card(driver, key)[1] == pytest.approx(summary[key], rel=1e-12), key
