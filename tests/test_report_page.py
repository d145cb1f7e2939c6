"""The operator's monthly page, looked at in headless Chromium as an alliance member would.

A simulated alliance (35 days from 2026-11-01, with liu-books quietly taking
its banner down and huang-shoes only taking traffic) and its November page:
every chart is drawn at a readable size, nothing is fetched from the network,
the console stays clean, labels are Chinese (English with --locale en_US),
and what came from events is shown as text, never as markup.
"""

from __future__ import annotations

import re

import pytest

from tests.alliance_story import Alliance, as_json, run, simulated_ledger
from tests.browser import browser_page

CHARTS = "() => [...document.querySelectorAll('.js-plotly-plot')].map(d => { const r = d.getBoundingClientRect(); " \
         "return {id: d.id, width: r.width, height: r.height, " \
         "marks: d.querySelectorAll('g.hm image, g.heatmaplayer image, g.trace.bars path').length}; })"


@pytest.fixture(scope="module")
def alliance(tmp_path_factory):
    folder = tmp_path_factory.mktemp("report")
    return folder, simulated_ledger(folder, seed=7, visitors=400, days=35)


def open_report(path, screenshot):
    with browser_page() as page:
        page.goto(path.as_uri())
        page.wait_for_function("() => document.querySelectorAll('.js-plotly-plot .main-svg').length >= 3")
        page.wait_for_timeout(300)
        charts = page.evaluate(CHARTS)
        text = page.inner_text("body")
        page.screenshot(path=str(screenshot), full_page=True)
        return charts, text, list(page.console_messages_seen), list(page.requests_seen), page


def test_the_november_page_draws_every_chart_offline_and_logs_no_error(alliance):
    folder, db = alliance
    out = folder / "report-2026-11.html"
    assert "report-2026-11.html" in run("report", "--db", db, "--period", "2026-11", "--out", out).output
    markup = re.sub(r"(?s)<script[^>]*>.*?</script>", "<script></script>", out.read_text(encoding="utf-8"))
    assert markup.count("<script></script>") >= 4, "plotly.js and each chart's script are inside the page"
    assert not re.search(r"""<(script|link|img|iframe)[^>]*\b(src|href)\s*=|@import|url\(""", markup), (
        "the page loads nothing from outside itself")
    charts, text, console, requests, _ = open_report(out, folder / "report-2026-11.png")
    assert [c["id"] for c in charts] == ["chart-traffic", "chart-given-received", "chart-gmv-cny"]
    for chart in charts:
        assert chart["width"] >= 400 and chart["height"] >= 300, chart
        assert chart["marks"] >= 1, f"{chart['id']} drew nothing"
    assert [m for m in console if m[0] in ("error", "pageerror")] == []
    assert all(url.startswith(("file:", "data:", "blob:", "about:")) for url in requests), requests
    for words in ("谁给谁引流", "各店导出与导入的点击", "联盟每月成交额", "健康预警", "结算单摘要", "成员记分卡"):
        assert words in text
    assert "悄悄撤图" in text or "只进不出" in text, "the simulated alliance has members to notice"
    assert re.search(r"¥[\d,]+\.\d\d", text), "money is shown as money"
    assert (folder / "report-2026-11.png").stat().st_size > 50_000


def test_the_page_in_english_and_the_sheet_once_the_month_is_settled(alliance):
    folder, db = alliance
    out = folder / "report-en.html"
    run("report", "--db", db, "--period", "2026-11", "--out", out, "--locale", "en_US")
    charts, text, console, _, _ = open_report(out, folder / "report-en.png")
    assert len(charts) == 3 and [m for m in console if m[0] in ("error", "pageerror")] == []
    assert "Who sends whom" in text and "Member health" in text and "CN¥" in text
    assert "is settled" in text, "the simulation settles November on December 2nd"
    sheet = text.split("Settlement sheet", 1)[1].split("Member scorecards", 1)[0]
    assert re.search(r"\n[a-z-]+\t[a-z-]+\tCN¥[\d,]+\.\d\d", sheet), "payer, payee and amount per line"
    january = folder / "report-2027-01.html"
    run("report", "--db", db, "--period", "2027-01", "--out", january, "--locale", "en_US")
    assert "2027-01 has not been settled yet" in january.read_text(encoding="utf-8")


def test_shop_names_are_text_never_markup(tmp_path):
    story = Alliance()
    tricky = "<b>x</b><img src=x onerror=alert(1)>"
    for shop in ("a-tea", tricky):
        story.member(shop, "2026-10-01T00:00:00Z")
    story.agreement("2026-11-01T00:00:00Z")
    story.click("a-tea", tricky, "2026-11-02T10:00:00Z")
    story.order(tricky, "2026-11-02T10:05:00Z", 10_000)
    db = story.ledger(tmp_path)
    out = tmp_path / "tricky.html"
    run("report", "--db", db, "--period", "2026-11", "--out", out)
    charts, text, console, requests, _ = open_report(out, tmp_path / "tricky.png")
    assert tricky in text, "the name is shown as it is"
    assert [m for m in console if m[0] in ("error", "pageerror")] == []
    assert all(url.startswith(("file:", "data:", "blob:", "about:")) for url in requests), requests
    assert len(charts) == 3
    with browser_page() as page:
        page.goto(out.as_uri())
        page.wait_for_timeout(500)
        assert page.evaluate("() => document.querySelectorAll('main b, main img, svg b').length") == 0


def test_the_page_shows_what_the_commands_answer(alliance):
    from refledger.reports.operator_report import operator_report
    from refledger.store.readside import query

    _, db = alliance
    page = query(db, operator_report, period="2026-11", zone="Asia/Shanghai")
    assert page["traffic"] == as_json("traffic", "--db", db, "--period", "2026-11")
    assert page["members"] == as_json("members", "--db", db, "--period", "2026-11")
    assert page["health"] == as_json("health", "--db", db, "--at", "2026-11-30", code=None)
    november = [m for m in page["monthly"] if m["month"] == "2026-11"]
    assert [m["gmv_total"] for m in november] == [sum(c["gmv_total"] for c in page["members"])]
    assert [m["gmv_via_alliance"] for m in november] == [sum(t["gmv_minor"] for t in page["traffic"])]
