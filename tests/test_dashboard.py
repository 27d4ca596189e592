"""The offline dashboard in headless Chromium (Debian's `chromium`), driven over the DevTools protocol.

The page is built on both chains from the same generated 3,000-row workbook: the embedded run
(`retail-pipeline run`, which rebuilds the dashboard after dbt; DuckDB) and the emulator chain's
BigQuery (`retail-pipeline dashboard` on that home). Each page is loaded from file:// with the
network emulated offline, and checked against its own warehouse's marts, queried here directly.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from contextlib import ExitStack
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "test-artifacts"
BIN = Path(sys.executable).parent / "retail-pipeline"
CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
CHARTS = ["daily", "monthly", "countries", "products", "segments", "cohorts", "quality"]
KPIS = ["net_revenue", "orders", "customers", "average_order_value", "cancellation_rate"]

needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="Debian's chromium is not installed (/usr/bin/chromium): apt-get install chromium"
)


# ---------------------------------------------------------------- a small DevTools protocol client


class Browser:
    """Headless Chromium with one page, spoken to over the DevTools protocol (websocket, JSON)."""

    def __init__(self, executable: str, profile: Path, timeout: float = 30.0) -> None:
        from websockets.sync.client import connect

        self.timeout = timeout
        self.events: list[dict] = []
        self._stack = ExitStack()
        self._next_id = 0
        profile.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [
                executable,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-default-apps",
                "--disable-extensions",
                "--no-default-browser-check",
                "--host-resolver-rules=MAP * ~NOTFOUND",
                "--proxy-server=127.0.0.1:9",
                "--hide-scrollbars",
                f"--user-data-dir={profile}",
                "--remote-debugging-port=0",
                "--remote-allow-origins=*",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + timeout
        while not (port_file.exists() and port_file.read_text().strip()):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                err = self.proc.stderr.read().decode(errors="replace") if self.proc.poll() is not None else ""
                self.close()
                raise RuntimeError(f"chromium did not open its DevTools port within {timeout} s: {err[-2000:]}")
            time.sleep(0.05)
        port = int(port_file.read_text().split()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=timeout) as resp:
            targets = json.load(resp)
        page = next(t for t in targets if t["type"] == "page")
        self.ws = self._stack.enter_context(connect(page["webSocketDebuggerUrl"], max_size=None, open_timeout=timeout))

    def send(self, method: str, **params) -> dict:
        """Call a protocol method and return its result (events that arrive meanwhile are kept)."""
        self._next_id += 1
        call_id = self._next_id
        self.ws.send(json.dumps({"id": call_id, "method": method, "params": params}))
        deadline = time.monotonic() + self.timeout
        while True:
            message = json.loads(self.ws.recv(timeout=max(0.1, deadline - time.monotonic())))
            if message.get("id") == call_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            self.events.append(message)

    def wait_for(self, event: str) -> dict:
        """The first event of that name (already received or arriving within the timeout)."""
        deadline = time.monotonic() + self.timeout
        while True:
            for e in self.events:
                if e.get("method") == event:
                    return e
            self.events.append(json.loads(self.ws.recv(timeout=max(0.1, deadline - time.monotonic()))))

    def drain(self, seconds: float = 0.2) -> None:
        """Collect the events that arrive during the next moment."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                self.events.append(json.loads(self.ws.recv(timeout=left)))
            except TimeoutError:
                break

    def js(self, expression: str):
        """Evaluate JavaScript in the page and return its (JSON) value; a thrown error fails the test."""
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise AssertionError(f"page script failed: {result['exceptionDetails']}")
        return result["result"].get("value")

    def close(self) -> None:
        self._stack.close()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        if self.proc.stderr:
            self.proc.stderr.close()


def open_page(browser: Browser, url: str, width: int = 1440, height: int = 1000) -> None:
    """Load url with the network emulated offline; returns when the dashboard says it is ready."""
    for domain in ("Page", "Runtime", "Log", "Network"):
        browser.send(f"{domain}.enable")
    browser.send(
        "Network.emulateNetworkConditions", offline=True, latency=0, downloadThroughput=-1, uploadThroughput=-1
    )
    browser.send("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False)
    browser.send("Page.navigate", url=url)
    browser.wait_for("Page.loadEventFired")
    deadline = time.monotonic() + browser.timeout
    while browser.js("document.body && document.body.dataset.ready") != "true":
        if time.monotonic() > deadline:
            raise AssertionError(f"the dashboard did not become ready; events: {problems(browser)}")
        time.sleep(0.05)
    browser.drain()


def problems(browser: Browser) -> list[str]:
    """Console errors, uncaught exceptions and error log entries seen so far."""
    found = []
    for e in browser.events:
        method, params = e.get("method"), e.get("params", {})
        if method == "Runtime.exceptionThrown":
            found.append(f"exception: {params['exceptionDetails'].get('exception', {}).get('description')}")
        elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert", "warning"):
            found.append(f"console.{params['type']}: {[a.get('value', a.get('description')) for a in params['args']]}")
        elif method == "Log.entryAdded" and params["entry"]["level"] in ("error", "warning"):
            found.append(f"log {params['entry']['level']}: {params['entry']['text']} {params['entry'].get('url', '')}")
    return found


def requested_urls(browser: Browser) -> list[str]:
    """URLs the page asked for; data: URLs are inline (Chromium draws the date input's icon with one)."""
    urls = [e["params"]["request"]["url"] for e in browser.events if e.get("method") == "Network.requestWillBeSent"]
    return [u for u in urls if not u.startswith("data:")]


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def dashboard_run(small_home: Path) -> Path:
    """The embedded run of the small workbook; `run` built its dashboard (see analytics_fixtures)."""
    return small_home


@pytest.fixture(
    scope="session",
    # the BigQuery page reads the shared emulator run: with its other readers on one xdist worker
    params=["duckdb", pytest.param("bigquery", marks=[pytest.mark.emulator, pytest.mark.xdist_group("emulator_run")])],
)
def built(request, dashboard_run: Path, duckdb_sql) -> tuple[Path, object]:
    """(page file, sql) per chain: the DuckDB run's page, or the page `retail-pipeline dashboard` builds
    from the emulator chain's BigQuery; sql(statement) queries that chain's marts (unqualified names)."""
    if request.param == "duckdb":
        return dashboard_run / "dashboard" / "index.html", lambda sql: duckdb_sql(
            dashboard_run / "warehouse.duckdb", sql
        )
    return request.getfixturevalue("bigquery_page"), request.getfixturevalue("bigquery_sql")


@pytest.fixture(scope="session")
def bigquery_page(emulator_run) -> Path:
    """`retail-pipeline dashboard` on the emulator chain's home: the page built from BigQuery."""
    proc = subprocess.run(
        [str(BIN), "--home", str(emulator_run.home), "dashboard"],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **emulator_run.env},
    )
    assert proc.returncode == 0, proc.stderr
    page_file = emulator_run.home / "dashboard" / "index.html"
    assert "bigquery://retail-local/retail_an" in page_file.read_text(encoding="utf-8")
    return page_file


@pytest.fixture(scope="session")
def marts(built):
    """Query the marts of the chain the page was built from."""
    return lambda sql: built[1](sql)


@pytest.fixture(scope="session")
def page(built, tmp_path_factory: pytest.TempPathFactory):
    """The chain's dashboard in its own headless Chromium, loaded from the file system, network off."""
    if CHROMIUM is None:
        pytest.skip("Debian's chromium is not installed (/usr/bin/chromium): apt-get install chromium")
    b = Browser(CHROMIUM, tmp_path_factory.mktemp("chromium-profile"))
    open_page(b, built[0].resolve().as_uri())
    yield b
    b.close()


def page_data(page_file: Path) -> dict:
    """The data the page embeds, less when and from where it was built and how fresh its source is."""
    html = page_file.read_text(encoding="utf-8")
    start = html.index('id="dashboard-data">') + len('id="dashboard-data">')
    data = json.loads(html[start : html.index("</script>", start)])
    return {k: v for k, v in data.items() if k not in ("generated_at", "warehouse", "data_as_of")}


def chart_marks(b: Browser) -> dict[str, int]:
    return b.js(
        "Object.fromEntries([...document.querySelectorAll('[data-chart]')].map("
        "c => [c.dataset.chart, c.querySelectorAll('svg .mark').length]))"
    )


def chart_pictures(b: Browser) -> dict[str, str]:
    return b.js(
        "Object.fromEntries([...document.querySelectorAll('[data-chart]')].map(c => [c.dataset.chart, c.innerHTML]))"
    )


def kpis(b: Browser) -> dict[str, dict]:
    return b.js(
        "Object.fromEntries([...document.querySelectorAll('[data-kpi]')].map("
        "k => [k.dataset.kpi, {exact: k.dataset.exact, text: k.querySelector('.value').textContent}]))"
    )


def choose_country(b: Browser, country: str) -> None:
    """Pick a country in the filter like a user: set the <select> and fire its change event."""
    found = b.js(f"""(() => {{
        const s = document.getElementById('country');
        const o = [...s.options].find(o => o.textContent === {json.dumps(country)});
        if (!o) return false;
        s.value = o.value; s.dispatchEvent(new Event('change', {{bubbles: true}}));
        return true; }})()""")
    assert found, f"{country} is not in the country filter"


def reset_filters(b: Browser) -> None:
    b.js("document.getElementById('reset').click()")


def pounds(text: str) -> Decimal:
    """'£1,234.50' / '−£3.00' as shown on the page → Decimal."""
    return Decimal(text.replace("£", "").replace(",", "").replace("\u2212", "-"))


# ---------------------------------------------------------------- tests


def test_run_writes_a_self_contained_dashboard(dashboard_run: Path):
    page_file = dashboard_run / "dashboard" / "index.html"
    assert page_file.exists(), "retail-pipeline run did not build the dashboard"
    html = page_file.read_text(encoding="utf-8")
    assert "<script src" not in html and "<link" not in html and "@import" not in html
    assert "http://" not in html.replace("http://www.w3.org/2000/svg", "")
    assert "https://" not in html


def test_dashboard_command_rebuilds_the_page(dashboard_run: Path, tmp_path: Path):
    out = tmp_path / "copy" / "dash.html"
    proc = subprocess.run(
        [str(BIN), "--home", str(dashboard_run), "dashboard", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert str(out) in proc.stdout and out.stat().st_size > 10_000
    original = (dashboard_run / "dashboard" / "index.html").read_text(encoding="utf-8")
    rebuilt = out.read_text(encoding="utf-8")
    strip = lambda s: s.split('"generated_at":', 1)[0]  # noqa: E731 - the build time differs
    assert strip(rebuilt) == strip(original)


def test_dashboard_command_explains_a_missing_warehouse(tmp_path: Path):
    proc = subprocess.run(
        [str(BIN), "--home", str(tmp_path / "empty"), "dashboard"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 1
    assert "retail-pipeline run" in proc.stderr and "Traceback" not in proc.stderr


@needs_chromium
def test_page_loads_offline_without_errors_or_requests(page: Browser, built):
    url = built[0].resolve().as_uri()
    assert problems(page) == []
    assert set(requested_urls(page)) == {url}
    assert page.js("document.title").startswith("Online Retail")


@needs_chromium
def test_footer_says_how_fresh_the_data_is(page: Browser, marts):
    (newest,) = marts("select max(ingested_at) from mart_data_quality where state = 'ingested'")[0]
    footer = page.js("document.getElementById('footer').textContent")
    assert f"Data as of {newest.isoformat(sep=' ')}" in footer


@needs_chromium
def test_every_chart_has_marks(page: Browser):
    marks = chart_marks(page)
    assert sorted(marks) == sorted(CHARTS)
    assert all(n > 0 for n in marks.values()), marks
    assert marks["monthly"] >= 2 and marks["countries"] >= 4  # bars per month, two per country


@needs_chromium
def test_headline_figures_equal_the_marts(page: Browser, marts):
    reset_filters(page)
    shown = kpis(page)
    assert sorted(shown) == sorted(KPIS)
    net, orders, gross, cancellations = marts(
        "select sum(net_revenue), sum(orders), sum(gross_sales), sum(cancellations) from mart_revenue_monthly"
    )[0]
    assert Decimal(shown["net_revenue"]["exact"]) == net
    assert pounds(shown["net_revenue"]["text"]) == net.quantize(Decimal("0.01"))
    assert int(shown["orders"]["exact"]) == orders
    (customers,) = marts("select count(*) from mart_customer_rfm")[0]
    assert int(shown["customers"]["exact"]) == customers
    assert pounds(shown["average_order_value"]["text"]) == (gross / orders).quantize(Decimal("0.01"))
    assert shown["cancellation_rate"]["text"] == f"{-100 * cancellations / gross:.1f}%"


@needs_chromium
def test_country_filter_changes_every_chart_and_matches_the_country_mart(page: Browser, marts):
    reset_filters(page)
    before = chart_pictures(page)
    # the second country by revenue: smaller than the whole, but with orders
    country, net, orders, aov = marts(
        "select country, net_revenue, orders, average_order_value from mart_revenue_by_country "
        "where orders > 0 order by revenue_rank limit 1 offset 1"
    )[0]
    choose_country(page, country)
    after = chart_pictures(page)
    shown = kpis(page)
    assert Decimal(shown["net_revenue"]["exact"]) == net
    assert int(shown["orders"]["exact"]) == orders
    assert pounds(shown["average_order_value"]["text"]) == aov
    filtered = [c for c in CHARTS if c != "quality"]  # data quality is per file, not per country
    assert [c for c in filtered if before[c] == after[c]] == []
    assert before["quality"] == after["quality"]
    assert page.js("document.getElementById('subtitle').textContent").count(country) == 1
    assert problems(page) == []
    reset_filters(page)
    assert chart_pictures(page) == before


@needs_chromium
def test_date_range_filter_matches_the_monthly_mart(page: Browser, marts):
    reset_filters(page)
    _month, first, last, net, orders = marts(
        "select m.invoice_month, min(d.invoice_date), max(d.invoice_date), m.net_revenue, m.orders "
        "from mart_revenue_monthly m join mart_revenue_daily d on d.invoice_month = m.invoice_month "
        "group by m.invoice_month, m.net_revenue, m.orders order by m.net_revenue desc limit 1"
    )[0]
    page.js(f"""(() => {{
        const f = document.getElementById('date-from'), t = document.getElementById('date-to');
        f.value = '{first.isoformat()}'; f.dispatchEvent(new Event('change'));
        t.value = '{last.isoformat()}'; t.dispatchEvent(new Event('change')); }})()""")
    shown = kpis(page)
    assert Decimal(shown["net_revenue"]["exact"]) == net
    assert int(shown["orders"]["exact"]) == orders
    assert page.js("document.querySelectorAll('[data-chart=monthly] svg .mark').length") == 1
    reset_filters(page)


@needs_chromium
def test_cohort_heatmap_equals_the_retention_mart(page: Browser, marts):
    reset_filters(page)
    cells = page.js(
        "[...document.querySelectorAll('[data-chart=cohorts] rect[data-cohort]')].map("
        "r => [r.dataset.cohort, +r.dataset.offset, +r.dataset.active, +r.dataset.size])"
    )
    expected = marts(
        "select cohort_month, months_since_first_order, active_customers, cohort_size from mart_cohort_retention"
    )
    assert sorted(tuple(c) for c in cells) == sorted((m.strftime("%Y-%m"), o, a, n) for m, o, a, n in expected)


@needs_chromium
def test_screenshot(page: Browser, built):
    reset_filters(page)
    height = page.js("document.documentElement.scrollHeight")
    page.send("Emulation.setDeviceMetricsOverride", width=1440, height=height, deviceScaleFactor=1, mobile=False)
    time.sleep(0.4)  # the page re-renders its charts after a resize
    shot = page.send("Page.captureScreenshot", format="png", captureBeyondViewport=True)
    png = base64.b64decode(shot["data"])
    ARTIFACTS.mkdir(exist_ok=True)
    name = "dashboard.png" if "bigquery://" not in built[0].read_text(encoding="utf-8") else "dashboard-bigquery.png"
    (ARTIFACTS / name).write_bytes(png)
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 50_000
    assert problems(page) == []


@needs_chromium
def test_empty_marts_give_a_page_that_says_so(tmp_path: Path, dashboard_run: Path):
    """Every row quarantined, say: the marts exist but are empty; the page shows no data, and no errors."""
    home = tmp_path / "empty"
    home.mkdir()
    con = duckdb.connect(str(home / "warehouse.duckdb"))
    con.execute(f"attach '{dashboard_run / 'warehouse.duckdb'}' as src (read_only)")
    con.execute("create schema analytics")
    for (table,) in con.execute(
        "select table_name from information_schema.tables where table_catalog = 'src' "
        "and table_schema = 'analytics' and table_type = 'BASE TABLE'"
    ).fetchall():
        con.execute(f"create table analytics.{table} as select * from src.analytics.{table} where false")
    con.close()
    proc = subprocess.run([str(BIN), "--home", str(home), "dashboard"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    b = Browser(CHROMIUM, tmp_path / "profile")
    try:
        open_page(b, (home / "dashboard" / "index.html").as_uri())
        assert problems(b) == []
        assert set(chart_marks(b).values()) == {0}
        assert b.js("document.querySelectorAll('[data-chart] .empty').length") == len(CHARTS)
        assert kpis(b)["net_revenue"]["text"] == "£0.00"
    finally:
        b.close()


def test_dashboard_open_hands_the_file_to_the_browser(dashboard_run: Path, tmp_path: Path):
    """--open goes through Python's webbrowser, which honours $BROWSER: a command that records the URL."""
    seen = tmp_path / "opened.txt"
    recorder = f"{sys.executable} -c 'import pathlib, sys; pathlib.Path(sys.argv[1]).write_text(sys.argv[2])' {seen} %s"
    proc = subprocess.run(
        [str(BIN), "--home", str(dashboard_run), "dashboard", "--out", str(tmp_path / "d.html"), "--open"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "BROWSER": recorder},
    )
    assert proc.returncode == 0, proc.stderr
    assert seen.read_text() == (tmp_path / "d.html").resolve().as_uri()


def test_dashboard_reads_the_marts_not_the_fact(dashboard_run: Path, tmp_path: Path):
    """A copy of the warehouse without the fact builds the same page: the dashboard needs only marts."""
    home = tmp_path / "no-fact"
    home.mkdir()
    shutil.copy(dashboard_run / "warehouse.duckdb", home / "warehouse.duckdb")
    con = duckdb.connect(str(home / "warehouse.duckdb"))
    con.execute("drop table analytics.fct_sales_lines")
    con.close()
    proc = subprocess.run([str(BIN), "--home", str(home), "dashboard"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert page_data(home / "dashboard" / "index.html") == page_data(dashboard_run / "dashboard" / "index.html")


@pytest.mark.emulator
def test_bigquery_page_carries_the_same_data_as_duckdbs(bigquery_page: Path, dashboard_run: Path):
    """Both chains ran the same workbook: the pages embed the same data (data quality aside: batch ids,
    sources and times are each run's own)."""
    bigquery, duck = page_data(bigquery_page), page_data(dashboard_run / "dashboard" / "index.html")
    assert len(bigquery["quality"]) == len(duck["quality"])
    for data in (bigquery, duck):
        data.pop("quality")
    assert bigquery == duck
