"""`ether monitor`: the server's rules (loopback only unless asked, with a
token), /metrics, and the page in a real browser (Debian's Chromium, driven by
Playwright with executable_path; marked `browser`, skipped where missing).

The browser test saves a screenshot in artifacts/ (and, with
ETHER_DOCS_SCREENSHOT=1, the README's docs/monitor.png)."""
from __future__ import annotations

import os
import pathlib
import shutil
import signal
import threading
import urllib.error
import urllib.parse
import urllib.request

import pytest

from ether import ether, monitor
from ether.cli import main

from conftest import wait_for

ROOT = pathlib.Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "artifacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")



def fetch(url: str, headers: dict | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.read().decode()


@pytest.mark.timeout(30)
@pytest.mark.parametrize("argv,why", [
    (["--host", "0.0.0.0"], "refusing to serve the monitor on '0.0.0.0'"),
    (["--host", "192.168.1.5", "--allow-remote"], "needs a token of at least 16 characters"),
    (["--host", "::", "--allow-remote", "--token", "short"], "needs a token of at least 16"),
])
def test_a_non_loopback_bind_is_refused_without_allow_remote_and_a_token(argv, why, capsys):
    assert main(["monitor", *argv]) == 2
    assert why in capsys.readouterr().err
    monitor.check_bind("0.0.0.0", allow_remote=True, token="x" * 16)  # both given: allowed
    monitor.check_bind("127.0.0.2", allow_remote=False, token=None)
    monitor.check_bind("::1", allow_remote=False, token=None)


@pytest.mark.timeout(60)
def test_metrics_parse_and_a_token_guards_every_route(live):
    from prometheus_client.parser import text_string_to_metric_families
    token = "t" * 24
    with monitor.serve(live, port=0, period=0.2, token=token) as server:
        base = f"http://127.0.0.1:{server.port}"
        assert ether.get("ticker", "burst", params={"count": 40}) == {"sent": 40}
        for path in ("/", "/state", "/metrics", "/static/monitor.js", "/events"):
            assert fetch(base + path)[0] == 401, path
        assert fetch(base + "/state?token=wrong")[0] == 401
        # ticker's next stats report (1 Hz) carries the burst
        assert wait_for(lambda: server.collector.stats()[0].get("ticker", {}).get("published") == 40,
                        10.0) is not None
        status, text = fetch(base + "/metrics", {"Authorization": f"Bearer {token}"})
        assert status == 200
        families = {f.name: f for f in text_string_to_metric_families(text)}
        assert {"ether_messages_published", "ether_messages_dropped", "ether_inbox_fill_ratio",
                "ether_handler_errors", "ether_handler_seconds", "ether_node_published"} <= set(families)
        totals = {s.labels["instance"]: s.value for s in families["ether_node_published"].samples}
        assert totals["ticker"] == 40
        fills = {s.labels["instance"] for s in families["ether_inbox_fill_ratio"].samples}
        assert fills == {"main", "ticker", "scaler", "sink"}
        status, page = fetch(f"{base}/?token={token}")
        assert status == 200 and "static/monitor.js" in page
        with urllib.request.urlopen(f"{base}/?token={token}", timeout=10) as response:
            assert "default-src 'none'" in response.headers["Content-Security-Policy"]
        assert fetch(f"{base}/static/other.js?token={token}")[0] == 404


def _kill_and_wait(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)


@pytest.mark.browser
@pytest.mark.timeout(120)
def test_the_page_in_a_real_browser(live):
    if CHROMIUM is None:
        pytest.skip("no Chromium on this machine (apt-get install chromium chromium-driver)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed (pip install -e '.[dev]')")
    from prometheus_client.parser import text_string_to_metric_families

    stop = threading.Event()

    def publish():  # traffic, so the counters move
        n = 0
        while not stop.is_set():
            ether.pub({"n": n}, topic="ticks")
            n += 1
            stop.wait(0.005)

    publisher = threading.Thread(target=publish, daemon=True)
    publisher.start()
    errors, outside = [], []
    try:
        with monitor.serve(live, port=0, period=0.25) as server, sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            try:
                # The page's CSP forbids eval, which Playwright's waits use; the route
                # below is what proves that nothing leaves 127.0.0.1.
                page = browser.new_page(viewport={"width": 1400, "height": 900}, bypass_csp=True)
                page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
                page.on("pageerror", lambda e: errors.append(str(e)))

                def route(r):
                    host = urllib.parse.urlsplit(r.request.url).hostname
                    if host != "127.0.0.1":
                        outside.append(r.request.url)
                        return r.abort()
                    return r.continue_()
                page.route("**/*", route)
                page.goto(server.url)
                page.wait_for_function("Number(document.body.dataset.updates || 0) >= 1", timeout=20_000)

                rows = page.eval_on_selector_all("#instances tbody tr", "rs => rs.map(r => r.dataset.instance)")
                assert sorted(rows) == ["main", "scaler", "sink", "ticker"]
                assert page.text_content("#session") == live

                def handled(name):
                    return int(page.text_content(f'#instances tr[data-instance="{name}"] td.handled'))
                page.wait_for_function(  # its first stats report is in
                    "() => document.querySelector('#instances tr[data-instance=\"scaler\"] td.handled')"
                    ".textContent !== '-'", timeout=20_000)
                before = handled("scaler")
                updates = int(page.evaluate("document.body.dataset.updates"))
                page.wait_for_function(f"Number(document.body.dataset.updates) >= {updates + 3}",
                                       timeout=20_000)
                # The counters come from the stats topic, at 1 Hz: three updates of the
                # page (0.25 s apart) may all show the same report, so wait for a newer.
                page.wait_for_function(
                    "() => Number(document.querySelector('#instances tr[data-instance=\"scaler\"] "
                    f"td.handled').textContent) > {before}", timeout=20_000)
                assert handled("scaler") > before
                assert page.text_content('#topics tr[data-topic="ticks"] td.name') == "ticks"

                status, text = fetch(f"http://127.0.0.1:{server.port}/metrics")
                assert status == 200
                families = {f.name: f for f in text_string_to_metric_families(text)}
                published = {s.labels["instance"] for s in families["ether_node_published"].samples}
                assert published == {"main", "ticker", "scaler", "sink"}

                ARTIFACTS.mkdir(exist_ok=True)
                page.screenshot(path=str(ARTIFACTS / "monitor.png"), full_page=True)
                if os.environ.get("ETHER_DOCS_SCREENSHOT") == "1":
                    page.screenshot(path=str(ROOT / "docs" / "monitor.png"), full_page=True)

                os.kill(ether.get("sink", "pid"), signal.SIGKILL)
                page.wait_for_function(
                    "() => document.querySelector('#instances tr[data-instance=\"sink\"]')"
                    "?.dataset.state === 'dead'", timeout=15_000)
                assert page.get_attribute('#instances tr[data-instance="sink"]', "class") == "dead"
                page.screenshot(path=str(ARTIFACTS / "monitor-dead.png"), full_page=True)
            finally:
                browser.close()
    finally:
        stop.set()
        publisher.join(10)
    assert errors == []
    assert outside == []
