"""The HTML report in a real headless Chromium, driven over the DevTools protocol (aiohttp websocket):
the plots render, clicking a column header reorders the rows, and a screenshot is saved as an artefact."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import aiohttp
import pytest
from capcal.report import load_leaderboard, render
from capcal.results import write_results
from report_fixtures import make_run

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--hide-scrollbars"]


@pytest.fixture(scope="session")
def chromium() -> str:
    """Debian's chromium; installed with apt-get when missing and we are root (as in scripts/setup.sh)."""
    path = shutil.which("chromium")
    if path is None and hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get"):
        for cmd in (["apt-get", "install", "-y", "-q", "chromium"], ["apt-get", "update", "-q"],
                    ["apt-get", "install", "-y", "-q", "chromium"]):
            subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=900, check=False)
            path = shutil.which("chromium")
            if path:
                break
    if path is None:
        pytest.fail("headless Chromium is required for the HTML report test and could not be installed: "
                    "run `apt-get install -y chromium` as root (scripts/setup.sh does)")
    return path


@pytest.fixture(scope="module")
def report_file(tmp_path_factory, data_dir) -> Path:
    root = tmp_path_factory.mktemp("browser")
    tasks = {"math_a": slice(0, 50), "math_b": slice(50, 100)}
    runs = [make_run(root, data_dir, "qwen-a", model_id="qwen-math-a", tasks=tasks),
            make_run(root, data_dir, "qwen-b", model_id="qwen-math-b", tasks=tasks,
                     estimator_fn=lambda e: {**e, "prm": 1.0 - e["prm"]})]
    for rd in runs:
        write_results(rd, n_boot=200, seed=0)
    path = root / "leaderboard.html"
    path.write_text(render(load_leaderboard([rd.path for rd in runs]), "html"), encoding="utf-8")
    return path


class DevTools:
    """A minimal DevTools-protocol client: one page target, commands answered in order, events kept."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse):
        self.ws, self.next_id, self.events = ws, 0, []

    async def send(self, method: str, **params):
        self.next_id += 1
        await self.ws.send_json({"id": self.next_id, "method": method, "params": params})
        while True:
            msg = await self.ws.receive_json(timeout=60)
            if msg.get("id") == self.next_id:
                if "error" in msg:
                    raise AssertionError(f"{method} failed: {msg['error']}")
                return msg.get("result", {})
            self.events.append(msg)

    async def wait_event(self, method: str, timeout: float = 60):
        if any(e.get("method") == method for e in self.events):
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            msg = await self.ws.receive_json(timeout=deadline - time.monotonic())
            self.events.append(msg)
            if msg.get("method") == method:
                return
        raise AssertionError(f"no {method} event within {timeout}s")

    async def js(self, expression: str):
        res = await self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in res:
            raise AssertionError(f"JS error: {res['exceptionDetails']}")
        return res["result"].get("value")

    async def click(self, x: float, y: float):
        for kind in ("mousePressed", "mouseReleased"):
            await self.send("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1)


ROWS_JS = """Array.from(document.querySelectorAll('#summary tbody tr')).map(tr => [
  tr.cells[0].textContent + ' / ' + tr.cells[1].textContent,
  tr.cells[%d].getAttribute('data-value')])"""
HEADER_JS = """(() => { const th = Array.from(document.querySelectorAll('#summary thead th'))
  .find(h => h.textContent.startsWith(%s)); th.scrollIntoView({block: 'center'});
  const b = th.getBoundingClientRect(); return [th.cellIndex, b.x + b.width / 2, b.y + b.height / 2]; })()"""
PLOTS_JS = """Array.from(document.querySelectorAll('svg.chart')).map(s => {
  const b = s.getBoundingClientRect();
  const lines = Array.from(s.querySelectorAll('polyline.series')).map(p => p.getBBox());
  return {w: b.width, h: b.height, series: lines.length,
          drawn: lines.filter(l => l.width > 0 || l.height > 0).length,
          markers: s.querySelectorAll('circle').length}; })"""

DECISION_JS = """Array.from(document.querySelectorAll('img.decision-chart')).map(img => {
  const b = img.getBoundingClientRect();
  const svg = new DOMParser().parseFromString(atob(img.src.split(',')[1]), 'image/svg+xml');
  const lines = Array.from(svg.querySelectorAll('polyline.series'));
  return {title: img.alt, w: b.width, h: b.height, loaded: img.complete && img.naturalWidth > 0,
          series: lines.map(p => p.getAttribute('data-series')),
          drawn: lines.filter(p => p.getAttribute('points').trim().split(' ').length >= 2).length,
          section: img.closest('section').className}; })"""


async def _drive(chromium: str, html: Path, profile: Path, shot: Path) -> dict:
    proc = subprocess.Popen([chromium, *FLAGS, f"--user-data-dir={profile}", "--remote-debugging-port=0",
                             "--window-size=1400,1000", "about:blank"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not (port_file.exists() and port_file.read_text().strip()):
            if time.monotonic() > deadline or proc.poll() is not None:
                raise AssertionError("chromium did not start its DevTools endpoint")
            await asyncio.sleep(0.1)
        port = int(port_file.read_text().splitlines()[0])
        async with aiohttp.ClientSession() as http:
            targets = []
            while not targets:
                async with http.get(f"http://127.0.0.1:{port}/json/list") as resp:
                    targets = [t for t in json.loads(await resp.text()) if t["type"] == "page"]
            async with http.ws_connect(targets[0]["webSocketDebuggerUrl"], max_msg_size=0) as ws:
                cdp = DevTools(ws)
                await cdp.send("Page.enable")
                await cdp.send("Network.enable")
                await cdp.send("Emulation.setDeviceMetricsOverride", width=1400, height=1000,
                               deviceScaleFactor=1, mobile=False)
                await cdp.send("Page.navigate", url=html.as_uri())
                await cdp.wait_event("Page.loadEventFired")
                out = {"plots": await cdp.js(PLOTS_JS), "decision_plots": await cdp.js(DECISION_JS)}
                col, x, y = await cdp.js(HEADER_JS % json.dumps("CC-Brier"))
                out["before"] = await cdp.js(ROWS_JS % col)
                await cdp.click(x, y)
                out["after_one"] = await cdp.js(ROWS_JS % col)
                out["aria"] = await cdp.js(f"document.querySelectorAll('#summary thead th')[{col}]"
                                           ".getAttribute('aria-sort')")
                col, x, y = await cdp.js(HEADER_JS % json.dumps("CC-Brier"))
                await cdp.click(x, y)
                out["after_two"] = await cdp.js(ROWS_JS % col)
                await cdp.js("window.scrollTo(0, 0)")
                png = await cdp.send("Page.captureScreenshot", format="png", captureBeyondViewport=True)
                shot.write_bytes(base64.b64decode(png["data"]))
                out["requests"] = [e["params"]["request"]["url"] for e in cdp.events
                                   if e.get("method") == "Network.requestWillBeSent"]
                return out
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="module")
def browser_run(chromium, report_file, tmp_path_factory, artifacts_dir):
    shot = artifacts_dir / "report.png"
    result = asyncio.run(_drive(chromium, report_file, tmp_path_factory.mktemp("chromium-profile"), shot))
    return result, shot


def test_plots_render(browser_run):
    result, _ = browser_run
    plots = result["plots"]
    assert len(plots) == 16  # 2 runs x 2 tasks x (2 reliability diagrams, pass@k, budget)
    for p in plots:
        # a one-bin series (the constant estimator) is a single marker, so not every line has an extent
        assert p["w"] > 100 and p["h"] > 100 and p["series"] > 0 and p["drawn"] >= 1
        assert p["markers"] > 0


def test_clicking_a_header_sorts_rows(browser_run):
    result, _ = browser_run
    before, once, twice = result["before"], result["after_one"], result["after_two"]
    assert sorted(before) == sorted(once) == sorted(twice) and len(before) == 8  # same rows, reordered
    values = [float(v) for _, v in once]
    assert values == sorted(values) and once != before  # ascending, and the order changed
    assert [float(v) for _, v in twice] == sorted(values, reverse=True)
    assert result["aria"] == "ascending"


def test_no_network_and_screenshot_saved(browser_run):
    result, shot = browser_run
    assert all(u.startswith(("file:", "data:")) for u in result["requests"]), result["requests"]
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000


def test_routing_and_risk_coverage_plots_render(browser_run):
    """The decision plots: per run and task, risk against coverage for both targets; per task of the pair
    of models (qwen-math-a, qwen-math-b), the routing curve with its random and oracle baselines."""
    result, _ = browser_run
    plots = result["decision_plots"]
    risk = [p for p in plots if p["title"].startswith("Risk vs coverage")]
    routing = [p for p in plots if p["title"].startswith("Routing")]
    assert len(risk) == 8 and len(routing) == 2     # 2 runs x 2 tasks x 2 targets; 1 pair x 2 tasks
    assert {p["section"] for p in risk} == {"selective-plots"} and {p["section"] for p in routing} == {"routing-plots"}
    for p in plots:
        assert p["loaded"] and p["w"] > 100 and p["h"] > 100 and p["drawn"] >= 3
        assert {"oracle", "random", "consistency", "prm"} <= set(p["series"])
