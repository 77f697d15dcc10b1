"""The sweep's own exporter: `python -m llm_dvfs.exporter` recording one level's samples CSV while serving /metrics."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from llm_dvfs.common.errors import UsageError
from llm_dvfs.commands.sweep.children import Child
from llm_dvfs.exporter.scrape import DeviceReading, ScrapeError, fetch


class ExporterChild:
    """Starts an exporter per level so that each level's samples CSV holds that level only."""

    def __init__(self, backend: str, gpu_ids: str | None, port: int, interval: float = 0.1) -> None:
        self.backend, self.gpu_ids, self.port, self.interval = backend, gpu_ids, port, interval
        self.url = f"http://127.0.0.1:{port}/metrics"
        self.child: Child | None = None

    def command(self, csv_path: Path) -> list[str]:
        cmd = [sys.executable, "-m", "llm_dvfs.exporter", "--backend", self.backend, "--interval", str(self.interval),
               "--output", str(csv_path), "--port", str(self.port), "--listen-address", "127.0.0.1"]
        return cmd + (["--gpu-ids", self.gpu_ids] if self.gpu_ids else [])

    def start(self, level_dir: Path, timeout: float = 60.0) -> list[DeviceReading]:
        """Start recording into `level_dir/samples.csv`; return the devices once /metrics lists them."""
        self.child = Child(self.command(level_dir / "samples.csv"), level_dir / "exporter.log").start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.child.running():
                raise UsageError(f"the exporter exited with status {self.child.returncode}: "
                                 f"{self.child.log_tail(1) or 'see ' + str(self.child.log_path)}")
            try:
                found = list(fetch(self.url, timeout=2).devices)
                if found:
                    return found
            except ScrapeError:
                pass
            time.sleep(0.2)
        self.stop()
        raise UsageError(f"the exporter did not serve gpu_info on {self.url} within {timeout:.0f} s "
                         f"(log: {level_dir / 'exporter.log'})")

    def stop(self) -> None:
        if self.child is not None:
            self.child.stop(grace=10.0)
            self.child = None
