"""The words people read, in the alliance's language (SPEC §11: Chinese by default).

Each label and sentence of the reports is written here once, per language.
The language follows the locale: ``zh_*`` is Chinese, anything else
English. Names that came from events (shop ids, reasons) are filled in as
they are; printing them as plain text is the renderer's job.
"""

from __future__ import annotations

from refledger.reports.money import DEFAULT_LOCALE

_SENTENCES = {
    "silent_withdrawal": (
        "基线期导出曝光 {baseline} 次（≥ {minimum}）；近 {recent_days} 天导出曝光 {recent} 次"
        "（×{factor} = {product} ≤ {baseline}）；近 {recent_days} 天仍收到点击 {clicks_in} 次",
        "baseline views out {baseline} (≥ {minimum}); views out in the last {recent_days} days {recent} "
        "(×{factor} = {product} ≤ {baseline}); still received {clicks_in} clicks in the last {recent_days} days"),
    "free_rider": (
        "近 {days} 天收到点击 {clicks_in} 次（≥ {minimum}），导出点击 {clicks_out} 次"
        "（×{ratio} = {product} ≤ {clicks_in}）",
        "received {clicks_in} clicks in the last {days} days (≥ {minimum}), gave {clicks_out} "
        "(×{ratio} = {product} ≤ {clicks_in})"),
    "declining": ("总成交额连续 {count} 个月下降：{path}", "total GMV fell {count} months in a row: {path}"),
    "inactive": ("状态正常，近 {days} 天没有发出任何事件（最后一次：{last}）",
                 "active, yet emitted no event in the last {days} days (last: {last})"),
    "never": ("从未", "never"),
    "no_flags": ("无预警：所有成员都在正常往来。", "No flags: every member is pulling its weight."),
    "flags_found": ("{count} 条预警", "{count} flag(s)"),
    "report_title": ("{alliance} 联盟运营月报 · {period}", "{alliance} alliance: the operator's report · {period}"),
    "report_subtitle": ("数据为账本现状，最新事件时间 {latest}（{zone} 时间）；金额按币种分列。",
                        "The ledger as it stands; latest event {latest} ({zone} time); money per currency."),
    "health_at": ("预警时点：{at}", "Flags at {at}"),
    "no_traffic": ("本月没有店铺间的引流。", "No traffic between members this month."),
    "no_sheet": ("{period} 尚未结算，还没有结算单。", "{period} has not been settled yet: no settlement sheet."),
    "sheet_intro": ("{period} 已结算。按账面现状，各方之间的应付款两两轧差后：左为各方合计，右为最大的几笔转账（{currency}）。",
                    "{period} is settled. Payable balances as the ledger stands, netted per pair: each party's "
                    "totals, and the largest transfers ({currency})."),
    "more_transfers": ("另有 {count} 笔较小的转账，见 refledger sheet。", "{count} smaller transfers: see refledger sheet."),
    "member_count": ("{count} 家", "{count}"),
}

_LABELS = {
    "referrer": ("引流方", "referrer"),
    "merchant": ("成交方", "merchant"),
    "shop_id": ("店铺", "shop"),
    "currency": ("币种", "currency"),
    "views": ("曝光", "views"),
    "clicks": ("点击", "clicks"),
    "uv": ("访客", "UV"),
    "orders": ("订单", "orders"),
    "gmv": ("成交额", "GMV"),
    "commission": ("佣金", "commission"),
    "conversion": ("转化率", "conversion"),
    "uv_yield": ("每访客成交额", "GMV per UV"),
    "rank": ("排名", "rank"),
    "status": ("状态", "status"),
    "status_since": ("状态起始", "since"),
    "views_out": ("导出曝光", "views out"),
    "clicks_out": ("导出点击", "clicks out"),
    "uv_out": ("导出访客", "UV out"),
    "views_in": ("导入曝光", "views in"),
    "clicks_in": ("导入点击", "clicks in"),
    "uv_in": ("导入访客", "UV in"),
    "reciprocity": ("互惠比", "reciprocity"),
    "orders_referred": ("带来订单", "orders referred"),
    "gmv_referred": ("带来成交额", "GMV referred"),
    "commission_earned": ("佣金收入", "commission earned"),
    "gmv_total": ("总成交额", "total GMV"),
    "gmv_via_alliance": ("联盟带来的成交额", "GMV via alliance"),
    "commission_owed": ("应付佣金", "commission owed"),
    "flag": ("预警", "flag"),
    "evidence": ("依据", "evidence"),
    "active": ("正常", "active"),
    "suspended": ("暂停", "suspended"),
    "expelled": ("除名", "expelled"),
    "left": ("已退出", "left"),
    "silent_withdrawal": ("悄悄撤图", "silent withdrawal"),
    "free_rider": ("只进不出", "free rider"),
    "declining": ("业绩下滑", "declining"),
    "inactive": ("不活跃", "inactive"),
    "traffic_title": ("{period} 店铺间引流", "Traffic between members, {period}"),
    "members_title": ("成员记分卡 · {window}", "Member scorecards · {window}"),
    "health_title": ("成员健康预警 · {at}", "Member health · {at}"),
    "heatmap": ("谁给谁引流：点击次数（行：引流方，列：成交方）",
                "Who sends whom: clicks (rows: referrer, columns: merchant)"),
    "given_received": ("各店导出与导入的点击", "Clicks given and received per member"),
    "monthly_gmv": ("联盟每月成交额", "The alliance's GMV by month"),
    "month": ("月份", "month"),
    "all_orders": ("全部订单", "all orders"),
    "via_alliance": ("联盟引流成交", "via the alliance"),
    "pairs": ("引流明细（按成交额）", "Pairs, by GMV"),
    "scorecards": ("成员记分卡", "Member scorecards"),
    "health": ("健康预警", "Member health"),
    "sheet": ("结算单摘要", "Settlement sheet"),
    "payer": ("付款方", "payer"),
    "payee": ("收款方", "payee"),
    "amount": ("金额", "amount"),
    "party": ("结算方", "party"),
    "to_pay": ("应付合计", "to pay"),
    "to_receive": ("应收合计", "to receive"),
    "net": ("净额（+收 / −付）", "net (+ receives)"),
    "fund": ("联盟基金", "the alliance fund"),
    "up_to": ("截至 {at}", "up to {at}"),
    "members": ("成员", "members"),
}


def chinese(locale: str = DEFAULT_LOCALE) -> bool:
    return locale.lower().startswith("zh")


def say(key: str, locale: str = DEFAULT_LOCALE, **values) -> str:
    """A sentence in the locale's language."""
    zh, en = _SENTENCES[key]
    return (zh if chinese(locale) else en).format(**values)


def label(key: str, locale: str = DEFAULT_LOCALE, **values) -> str:
    """A column name or title in the locale's language (the key itself when none is written)."""
    pair = _LABELS.get(key)
    if pair is None:
        return key
    return (pair[0] if chinese(locale) else pair[1]).format(**values)
