"""The operator's monthly page: one self-contained HTML file that works offline.

Drawn from the answer of `reports.operator_report.operator_report`. Charts
are Plotly figures with plotly.js inlined once in the page (no script, style
or font is fetched from anywhere); tables are plain HTML. Words follow the
locale (Chinese by default), money is money in the locale's form, times are
in the alliance's time zone (SPEC §11).

Everything that came from an event (shop ids) is escaped, in the tables and
in the charts' labels alike (Plotly reads a few HTML tags in its text).
"""

from __future__ import annotations

import html
from zoneinfo import ZoneInfo

from refledger.reports.money import DEFAULT_LOCALE, as_decimal, format_count
from refledger.reports.readable import (SCORECARD_CELLS, TRAFFIC_CELLS, evidence, in_words, money, scorecard_cells,
                                        traffic_cells, when)
from refledger.reports.words import label, party, say

FONTS = '"Noto Sans CJK SC", "Source Han Sans SC", "PingFang SC", "Microsoft YaHei", "Helvetica Neue", Arial, sans-serif'
TOP_PAIRS = 15
TOP_TRANSFERS = 10

STYLE = """
body { font-family: %(fonts)s; margin: 0; background: #f5f6f8; color: #1f2933; }
header { background: #1f3a5f; color: #fff; padding: 24px 40px; }
header h1 { margin: 0 0 6px; font-size: 26px; }
header p { margin: 0; opacity: .85; }
main { padding: 24px 40px 48px; max-width: 1480px; }
section { background: #fff; border-radius: 8px; padding: 18px 24px; margin: 0 0 20px; box-shadow: 0 1px 3px rgba(0,0,0,.08); }
section h2 { font-size: 18px; margin: 0 0 12px; }
.kpis { display: flex; gap: 16px; flex-wrap: wrap; margin-bottom: 20px; }
.kpi { background: #fff; border-radius: 8px; padding: 14px 20px; min-width: 180px; box-shadow: 0 1px 3px rgba(0,0,0,.08); }
.kpi .v { font-size: 22px; font-weight: 600; margin-top: 4px; }
.kpi .k { color: #52606d; font-size: 13px; }
.grid { display: grid; grid-template-columns: 1fr 1fr; gap: 20px; }
table { border-collapse: collapse; width: 100%%; font-size: 13px; }
th, td { padding: 6px 8px; border-bottom: 1px solid #e4e7eb; text-align: left; white-space: nowrap; }
th { background: #f0f4f8; font-weight: 600; white-space: normal; word-break: keep-all; vertical-align: bottom; }
.scroll { overflow-x: auto; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; }
td.evidence { white-space: normal; }
.flag { display: inline-block; padding: 2px 8px; border-radius: 10px; background: #fde8e8; color: #9b1c1c; }
.ok { color: #1e6f3d; }
.note { color: #52606d; font-size: 13px; }
.chart { min-height: 420px; }
""" % {"fonts": FONTS}


def render_report(data: dict, zone: ZoneInfo, locale: str = DEFAULT_LOCALE) -> str:
    """The whole page as one HTML string."""
    import plotly.offline

    period = data["period"]
    alliance = " / ".join(data["alliance_ids"]) or "—"
    latest = when(data["latest_event_at"], zone)
    charts = [_traffic_heatmap(data, locale), _given_received(data, locale), *_monthly_gmv(data, locale)]
    body = "\n".join([
        f"<header><h1>{_e(say('report_title', locale, alliance=alliance, period=period))}</h1>"
        f"<p>{_e(say('report_subtitle', locale, latest=latest, zone=data['zone']))}</p></header>",
        "<main>",
        _kpis(data, locale),
        _section(label("heatmap", locale), charts[0] if data["traffic"] else _note(say("no_traffic", locale))),
        f"<div class=\"grid\">{_section(label('given_received', locale), charts[1])}"
        f"{_section(label('monthly_gmv', locale), ''.join(charts[2:]) or _note('—'))}</div>",
        _section(label("health", locale), _health(data, zone, locale)),
        _section(label("sheet", locale), _sheet(data, zone, locale)),
        _section(label("scorecards", locale), _scorecards(data, zone, locale)),
        _section(label("pairs", locale), _pairs(data, locale)),
        "</main>",
    ])
    lang = "zh-CN" if locale.lower().startswith("zh") else "en"
    return (f"<!DOCTYPE html>\n<html lang=\"{lang}\"><head><meta charset=\"utf-8\">"
            f"<title>{_e(say('report_title', locale, alliance=alliance, period=period))}</title>"
            f"<style>{STYLE}</style>"
            f"<script type=\"text/javascript\">{plotly.offline.get_plotlyjs()}</script>"
            f"</head><body>{body}</body></html>\n")


def _e(text) -> str:
    return html.escape(str(text), quote=True)


def _note(text: str) -> str:
    return f"<p class=\"note\">{_e(text)}</p>"


def _section(title: str, content: str) -> str:
    return f"<section><h2>{_e(title)}</h2>{content}</section>"


def _figure(fig, name: str) -> str:
    fig.update_layout(font={"family": FONTS, "size": 13}, margin={"l": 60, "r": 20, "t": 30, "b": 60},
                      paper_bgcolor="#ffffff", plot_bgcolor="#ffffff", height=440)
    return fig.to_html(full_html=False, include_plotlyjs=False, div_id=name,
                       config={"displaylogo": False, "responsive": True})


def _members_order(data: dict) -> list[str]:
    return list(dict.fromkeys(card["shop_id"] for card in data["members"]))


def _traffic_heatmap(data: dict, locale: str) -> str:
    import plotly.graph_objects as go

    shops = _members_order(data)
    index = {shop: i for i, shop in enumerate(shops)}
    seen: dict[tuple[str, str], dict] = {}
    for row in data["traffic"]:
        pair = seen.setdefault((row["referrer_shop_id"], row["merchant_shop_id"]), {**row, "money": []})
        if row["currency"]:
            pair["money"].append(row)
    clicks = [[None] * len(shops) for _ in shops]
    hover = [[""] * len(shops) for _ in shops]
    for (referrer, merchant), row in seen.items():
        if referrer not in index or merchant not in index:
            continue
        r, m = index[referrer], index[merchant]
        clicks[r][m] = row["clicks"]
        lines = [f"{_e(referrer)} → {_e(merchant)}",
                 f"{label('views', locale)} {format_count(row['views'], locale)} · {label('clicks', locale)} "
                 f"{format_count(row['clicks'], locale)} · {label('uv', locale)} {format_count(row['uv'], locale)}"]
        for figures in row["money"]:
            cells = traffic_cells(figures, locale)
            lines.append(f"{label('orders', locale)} {cells['orders']} · {label('gmv', locale)} {cells['gmv']} · "
                         f"{label('commission', locale)} {cells['commission']}")
        hover[r][m] = "<br>".join(lines)
    names = [_e(shop) for shop in shops]
    fig = go.Figure(go.Heatmap(z=clicks, x=names, y=names, text=[[_count_text(v, locale) for v in row] for row in clicks],
                               texttemplate="%{text}", customdata=hover, hovertemplate="%{customdata}<extra></extra>",
                               colorscale="Blues", colorbar={"title": {"text": label("clicks", locale)}},
                               hoverongaps=False, xgap=2, ygap=2))
    fig.update_layout(xaxis={"title": {"text": label("merchant", locale)}, "side": "bottom", "tickangle": -30},
                      yaxis={"title": {"text": label("referrer", locale)}, "autorange": "reversed"})
    fig.update_layout(height=max(440, 60 + 42 * len(shops)))
    return _figure(fig, "chart-traffic")


def _count_text(value, locale: str) -> str:
    return "" if value is None else format_count(value, locale)


def _given_received(data: dict, locale: str) -> str:
    import plotly.graph_objects as go

    cards = {card["shop_id"]: card for card in data["members"]}
    shops = sorted(cards, key=lambda shop: (-cards[shop]["clicks_in"], shop))
    names = [_e(shop) for shop in shops]
    fig = go.Figure([
        go.Bar(name=label("clicks_out", locale), y=names, x=[cards[s]["clicks_out"] for s in shops],
               orientation="h", marker_color="#3e7cb1"),
        go.Bar(name=label("clicks_in", locale), y=names, x=[cards[s]["clicks_in"] for s in shops],
               orientation="h", marker_color="#f29e4c"),
    ])
    fig.update_layout(barmode="group", legend={"orientation": "h", "y": -0.12},
                      yaxis={"autorange": "reversed"},
                      xaxis={"title": {"text": label("clicks", locale)}, "tickformat": ",d", "rangemode": "tozero"})
    return _figure(fig, "chart-given-received")


def _monthly_gmv(data: dict, locale: str) -> list[str]:
    import plotly.graph_objects as go

    charts = []
    for currency in dict.fromkeys(row["currency"] for row in data["monthly"]):
        rows = [row for row in data["monthly"] if row["currency"] == currency]
        months = [row["month"] for row in rows]
        bars = []
        for key, name, color in (("gmv_total", "all_orders", "#9fb3c8"), ("gmv_via_alliance", "via_alliance", "#1f3a5f")):
            bars.append(go.Bar(name=label(name, locale), x=months, y=[float(as_decimal(r[key], currency)) for r in rows],
                               customdata=[money(r[key], currency, locale) for r in rows],
                               hovertemplate="%{x}: %{customdata}<extra>" + label(name, locale) + "</extra>",
                               marker_color=color))
        fig = go.Figure(bars)
        fig.update_layout(barmode="group", legend={"orientation": "h", "y": -0.15},
                          xaxis={"type": "category", "title": {"text": label("month", locale)}},
                          yaxis={"title": {"text": f"{label('gmv', locale)} ({currency})"}, "separatethousands": True})
        charts.append(_figure(fig, f"chart-gmv-{currency.lower()}"))
    return charts


def _kpis(data: dict, locale: str) -> str:
    cards = []
    for currency in dict.fromkeys(row["currency"] for row in data["monthly"]):
        this = next((r for r in data["monthly"] if r["currency"] == currency and r["month"] == data["period"]), None)
        if this:
            cards.append((label("gmv_total", locale) + f" · {currency}", money(this["gmv_total"], currency, locale)))
            cards.append((label("gmv_via_alliance", locale), money(this["gmv_via_alliance"], currency, locale)))
    commission: dict[str, int] = {}
    for row in data["traffic"]:
        if row["currency"]:
            commission[row["currency"]] = commission.get(row["currency"], 0) + row["commission_minor"]
    cards += [(label("commission", locale) + f" · {c}", money(v, c, locale)) for c, v in sorted(commission.items())]
    cards.append((label("members", locale), say("member_count", locale, count=len(_members_order(data)))))
    cards.append((label("health", locale), say("flags_found", locale, count=len(data["health"]))))
    return "<div class=\"kpis\">" + "".join(
        f"<div class=\"kpi\"><div class=\"k\">{_e(k)}</div><div class=\"v\">{_e(v)}</div></div>" for k, v in cards
    ) + "</div>"


def _table(rows: list[dict], columns, locale: str, numeric=(), badges=()) -> str:
    """An HTML table of text cells (escaped); ``numeric`` columns align right, ``badges`` stand out."""
    numeric, badges = set(numeric), set(badges)

    def cell(column, value):
        text = _e(value)
        if column in badges:
            text = f"<span class=\"flag\">{text}</span>"
        return f"<td class=\"{'n' if column in numeric else column}\">{text}</td>"

    head = "".join(f"<th class=\"{'n' if c in numeric else ''}\">{_e(label(c, locale))}</th>" for c in columns)
    body = "".join("<tr>" + "".join(cell(c, row.get(c, "")) for c in columns) + "</tr>" for row in rows)
    return f"<div class=\"scroll\"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>"


def _health(data: dict, zone: ZoneInfo, locale: str) -> str:
    at = _note(say("health_at", locale, at=when(data["health_at"], zone)))
    if not data["health"]:
        return at + f"<p class=\"ok\">{_e(say('no_flags', locale))}</p>"
    rows = [{"shop_id": row["shop_id"], "flag": in_words(row["flag"], locale), "evidence": evidence(row, zone, locale)}
            for row in data["health"]]
    return at + _table(rows, ("shop_id", "flag", "evidence"), locale, badges=("flag",))


def _sheet(data: dict, zone: ZoneInfo, locale: str) -> str:
    """Each party's totals to pay and to receive, then the largest transfers (the sheet itself: `refledger
    sheet`)."""
    sheet = data["sheet"]
    if sheet is None:
        return _note(say("no_sheet", locale, period=data["period"]))
    currencies = ", ".join(sorted({t["currency"] for t in sheet["transfers"]})) or "—"
    totals = [{"party": party(t["party"], locale), "to_pay": money(t["to_pay"], t["currency"], locale),
               "to_receive": money(t["to_receive"], t["currency"], locale), "net": money(t["net"], t["currency"], locale)}
              for t in sorted(sheet["totals"], key=lambda t: (t["currency"], -t["net"], t["party"]))]
    moves = [{"payer": party(t["from"], locale), "payee": party(t["to"], locale),
              "amount": money(t["amount_minor"], t["currency"], locale)} for t in sheet["transfers"][:TOP_TRANSFERS]]
    more = len(sheet["transfers"]) - len(moves)
    cut = when(sheet["settlement"]["period_end"], zone)
    return (_note(say("sheet_intro", locale, period=data["period"], end=cut, currency=currencies))
            + f"<div class=\"grid\"><div>{_table(totals, ('party', 'to_pay', 'to_receive', 'net'), locale, numeric=('to_pay', 'to_receive', 'net'))}</div>"
            + f"<div>{_table(moves, ('payer', 'payee', 'amount'), locale, numeric=('amount',))}"
            + (_note(say("more_transfers", locale, count=more)) if more > 0 else "") + "</div></div>")


def _scorecards(data: dict, zone: ZoneInfo, locale: str) -> str:
    parts = []
    for currency in dict.fromkeys(card["currency"] for card in data["members"]):
        rows = [scorecard_cells(card, zone, locale) for card in data["members"] if card["currency"] == currency]
        if currency:
            parts.append(_note(currency))
        parts.append(_table(rows, SCORECARD_CELLS, locale,
                            numeric=set(SCORECARD_CELLS) - {"shop_id", "member_status", "status_since"}))
    return "".join(parts) or _note("—")


def _pairs(data: dict, locale: str) -> str:
    rows = [traffic_cells(row, locale) for row in data["traffic"][:TOP_PAIRS]]
    if not rows:
        return _note(say("no_traffic", locale))
    return _table(rows, TRAFFIC_CELLS, locale, numeric=TRAFFIC_CELLS[3:])
