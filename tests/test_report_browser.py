"""The report opens in headless Chromium with no console error, no network request and every
image loaded (naturalWidth > 0). Marked `browser`; fails (does not skip) when Chromium is missing.

Chromium is driven over the DevTools protocol on a pipe (`--remote-debugging-pipe`: commands
on fd 3, replies on fd 4, each a JSON text ended by a NUL byte), so only the standard library is
needed. Chromium runs in its own session; every process of that session is gone when the test
ends."""

from __future__ import annotations

import fcntl
import json
import os
import select
import signal
import subprocess
import time
from pathlib import Path

import pytest

from experiments.report import write_report
from tests.fixtures.report import report_fixtures as F

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--remote-debugging-pipe",
    "--window-size=1280,2000",
]
TIMEOUT = 60.0


def _ours(sid: int, marker: str) -> list[int]:
    """Live processes in session `sid` (the one Chromium was started in), or whose command line
    names `marker` (our profile folder: also catches a helper that detached from the session)."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()  # state, ppid, pgrp, session, ...
        mine = int(entry.name) in (os.getpid(), os.getppid())
        if fields[0] != "Z" and not mine and (int(fields[3]) == sid or marker in cmdline):
            out.append(int(entry.name))
    return out


def _above_9(fd: int) -> int:
    high = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(fd)
    return high


class Chromium:
    """A headless Chromium spoken to over the DevTools pipe."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.next_id = 0
        self.events: list[dict] = []
        self.buffer = b""

    def __enter__(self) -> Chromium:
        cmd_r, cmd_w = os.pipe()
        res_r, res_w = os.pipe()
        # Chromium's ends above fd 9, so that moving them onto fds 3 and 4 cannot clobber either.
        cmd_r, res_w = _above_9(cmd_r), _above_9(res_w)
        env = {
            "PATH": "/usr/bin:/bin",
            "HOME": str(self.workdir),  # Chromium writes nothing to the real home
            "XDG_CONFIG_HOME": str(self.workdir / "config"),
            "XDG_CACHE_HOME": str(self.workdir / "cache"),
        }
        # bash (dash takes single-digit fds only) moves the pipe ends onto the fds Chromium
        # expects, then becomes Chromium.
        script = f'exec "$@" 3<&{cmd_r} 4>&{res_w} {cmd_r}<&- {res_w}>&-'
        with open(self.workdir / "chromium.log", "wb") as log:
            self.proc = subprocess.Popen(
                ["/bin/bash", "-c", script, "bash", CHROMIUM, *FLAGS, f"--user-data-dir={self.workdir / 'profile'}", "about:blank"],
                pass_fds=(cmd_r, res_w),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                env=env,
                start_new_session=True,
            )
        os.close(cmd_r)
        os.close(res_w)
        self.cmd, self.res = cmd_w, res_r
        return self

    def __exit__(self, *exc) -> None:
        try:
            self.send("Browser.close", timeout=10)
        except Exception:  # noqa: BLE001 - already gone or stuck: killed below
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        # Chromium's helpers (zygotes, renderers, the crash handler that detaches into its own
        # session) end shortly after the browser; whatever has not ended in 10 s is killed.
        deadline = time.monotonic() + 10
        while self.leftovers() and time.monotonic() < deadline:
            time.sleep(0.1)
        for pid in self.leftovers():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)
        os.close(self.cmd)
        os.close(self.res)
        deadline = time.monotonic() + 10
        while self.leftovers() and time.monotonic() < deadline:
            time.sleep(0.1)

    def leftovers(self) -> list[int]:
        return _ours(self.proc.pid, str(self.workdir))

    def _read(self, deadline: float) -> dict:
        while b"\0" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.res], [], [], left)[0]:
                raise TimeoutError("Chromium did not answer in time; see chromium.log")
            chunk = os.read(self.res, 1 << 16)
            if not chunk:
                raise RuntimeError(f"Chromium closed the DevTools pipe; log:\n{(self.workdir / 'chromium.log').read_text(errors='replace')[-2000:]}")
            self.buffer += chunk
        message, self.buffer = self.buffer.split(b"\0", 1)
        return json.loads(message)

    def send(self, method: str, params: dict | None = None, session: str | None = None, timeout: float = TIMEOUT) -> dict:
        self.next_id += 1
        message = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self.cmd, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            reply = self._read(deadline)
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, method: str, session: str, timeout: float = TIMEOUT) -> dict:
        deadline = time.monotonic() + timeout
        for event in self.events:
            if event.get("method") == method and event.get("sessionId") == session:
                return event
        while True:
            event = self._read(deadline)
            self.events.append(event)
            if event.get("method") == method and event.get("sessionId") == session:
                return event

    def open(self, url: str, viewport: tuple[int, int] | None = None) -> tuple[list[dict], list[str]]:
        """Load `url` in a new tab (of `viewport` CSS pixels, width × height, when given): its
        images' states and every error or network request seen. `evaluate` then runs in it."""
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        self.session = session
        for domain in ("Runtime", "Log", "Page", "Network"):
            self.send(f"{domain}.enable", session=session)
        if viewport is not None:
            width, height = viewport
            self.send("Emulation.setDeviceMetricsOverride", {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False}, session=session)
        self.send("Page.navigate", {"url": url}, session=session)
        self.wait_for("Page.loadEventFired", session)
        expression = "JSON.stringify(Array.from(document.images, i => ({alt: i.alt, complete: i.complete, width: i.naturalWidth, height: i.naturalHeight})))"
        result = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True}, session=session)
        images = json.loads(result["result"]["value"])
        time.sleep(0.3)  # let late console messages arrive
        self.send("Runtime.evaluate", {"expression": "1"}, session=session)
        return images, self._problems(session)

    def evaluate(self, expression: str) -> object:
        """The JSON value of `expression` in the tab `open` loaded last."""
        result = self.send("Runtime.evaluate", {"expression": f"JSON.stringify({expression})", "returnByValue": True}, session=self.session)
        return json.loads(result["result"]["value"])

    def _problems(self, session: str) -> list[str]:
        problems = []
        for event in self.events:
            if event.get("sessionId") != session:
                continue
            method, params = event.get("method"), event.get("params", {})
            if method == "Runtime.exceptionThrown":
                problems.append(f"exception: {params['exceptionDetails'].get('text')}")
            elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                problems.append(f"console.{params['type']}: {params.get('args')}")
            elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
                problems.append(f"log: {params['entry'].get('text')} {params['entry'].get('url', '')}")
            elif method == "Network.loadingFailed":
                problems.append(f"load failed: {params.get('errorText')}")
            elif method == "Network.requestWillBeSent":
                url = params["request"]["url"]
                if not url.startswith(("file:", "data:", "about:")):
                    problems.append(f"network request: {url}")
        return problems


def test_report_opens_in_headless_chromium(tmp_path):
    assert Path(CHROMIUM).exists(), f"{CHROMIUM} not found: install Debian's chromium (apt-get install -y chromium) to run the browser tests"
    # The fullest report: a hotspot sweep (every figure, the quintile panels, error bars).
    folder = F.write_sweep(tmp_path / "sweep", task="hotspot", seeds=(0, 1), archs=("central", "local", "fedavg", "fedavg-dp", "fedavg-central-dp"))
    report = write_report(folder)
    n_images = report.read_text(encoding="utf-8").count("<img ")
    assert n_images >= 6
    work = tmp_path / "chromium"
    work.mkdir()
    browser = Chromium(work)
    with browser:
        images, problems = browser.open(report.as_uri())
    assert problems == []
    assert len(images) == n_images
    for image in images:
        assert image["complete"] and image["width"] > 0 and image["height"] > 0, image
    assert browser.leftovers() == [], "Chromium processes left running"


# Where each element the first screen must show sits in the page, and what it says.
BOXES = """Object.fromEntries(%s.map(id => { const e = document.getElementById(id); if (!e) return [id, null];
  const r = e.getBoundingClientRect(); return [id, {top: r.top, bottom: r.bottom, height: r.height, text: e.innerText}]; }))"""
FIRST_SCREEN = ("answer-recommendation", "answer-utility", "answer-unit", "answer-releases", "answer-spent", "answer-attack")


def test_first_screen_at_1400x900_holds_the_answer(tmp_path):
    """A decision maker's first screen (1400 × 900, not scrolled) shows the recommended
    architecture, the share of pooling's utility it keeps and the privacy unit in words; the
    architecture that fails at the budget (agency-level DP at 4 agencies, at AUC 0.448 test-weighted) is not
    recommended and says why."""
    assert Path(CHROMIUM).exists(), f"{CHROMIUM} not found: install Debian's chromium (apt-get install -y chromium) to run the browser tests"
    archs = ("central", "local", "fedavg", "fedavg-dp", "fedavg-central-dp")
    folder = F.write_run(tmp_path / "run", F.run_summary(archs=archs, levels={"fedavg-central-dp": 0.45}))
    report = write_report(folder)
    # The longest first screen the fixtures give: a hotspot sweep of all six architectures.
    sweep = write_report(F.write_sweep(tmp_path / "sweep", task="hotspot", eps_values=(0.5, 1.0, 4.0), seeds=(0, 1), archs=(*archs, "fedavg-dp-secagg")))
    work = tmp_path / "chromium"
    work.mkdir()
    browser = Chromium(work)
    with browser:
        _, problems = browser.open(report.as_uri(), viewport=(1400, 900))
        size = browser.evaluate("[window.innerWidth, window.innerHeight, window.scrollY]")
        boxes = browser.evaluate(BOXES % json.dumps(FIRST_SCREEN))
        _, sweep_problems = browser.open(sweep.as_uri(), viewport=(1400, 900))
        sweep_boxes = browser.evaluate(BOXES % json.dumps(FIRST_SCREEN))
    assert problems == [] and sweep_problems == []
    assert size == [1400, 900, 0]
    for key in FIRST_SCREEN:
        for page_boxes in (boxes, sweep_boxes):
            box = page_boxes[key]
            assert box is not None, f"#{key} is not in the report"
            assert box["height"] > 0 and 0 <= box["top"] and box["bottom"] <= 900, f"#{key} is not above the fold at 1400×900: {box}"
    assert "(one of the swept budgets 0.5, 1, 4)" in sweep_boxes["answer-recommendation"]["text"]
    # fedavg-dp: 0.7535 test-weighted against central's 0.7685 -> 0.2535 / 0.2685 = 94% kept.
    assert "Recommended at ε = 1 per agency" in boxes["answer-recommendation"]["text"] and "fedavg-dp" in boxes["answer-recommendation"]["text"]
    assert boxes["answer-utility"]["text"].startswith("94% of pooling's AUC gain over chance")
    assert boxes["answer-unit"]["text"].startswith("one incident record, per agency, (ε, δ) = (1, 1e-05)")
    assert "the model update (DP-SGD)" in boxes["answer-releases"]["text"]
    assert "0.51" in boxes["answer-attack"]["text"] and "0.62" in boxes["answer-attack"]["text"]
    page = report.read_text(encoding="utf-8")
    assert "fedavg-central-dp</strong>: no better than chance (AUC 0.448; chance is 0.5): with 4 agencies" in page
    assert browser.leftovers() == [], "Chromium processes left running"
