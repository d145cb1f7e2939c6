"""The words people read, in the alliance's language (SPEC §11: Chinese by default).

Reports and commands say the same things in many places ("j-jade 付给 h-hats
¥5.00"); each sentence and label is written here once, per language. The
language follows the locale: ``zh_*`` is Chinese, anything else English.
Names that came from events (shop ids, reasons) are filled in as they are;
printing them as plain text is the renderer's job.
"""

from __future__ import annotations

import re

from refledger.ledger.entries import CLICK
from refledger.reports.money import DEFAULT_LOCALE, format_count, format_money

FUND = "alliance"  # the alliance's own fund as a party to payouts and adjustments (SPEC §2)

_SENTENCES = {
    "pays": ("{payer} 付给 {payee} {amount}", "{payer} pays {payee} {amount}"),
    "even": ("{a} 与 {b} 两清", "{a} and {b} are even"),
    "owes_both_ways": ("{a} 欠 {b} {a_owes}，{b} 欠 {a} {b_owes}：{says}",
                       "{a} owes {b} {a_owes} and {b} owes {a} {b_owes}: {says}"),
    "receives_overall": ("{party} 合计应收 {amount}", "{party} receives {amount} overall"),
    "pays_overall": ("{party} 合计应付 {amount}", "{party} pays {amount} overall"),
    "even_overall": ("{party} 在 {currency} 上收支相抵", "{party} is even in {currency}"),
    "to_pay_receive": ("{party}：应付 {pay}，应收 {receive}", "{party}: to pay {pay}, to receive {receive}"),
    "to_pay_only": ("{party}：应付 {pay}", "{party}: to pay {pay}"),
    "to_receive_only": ("{party}：应收 {receive}", "{party}: to receive {receive}"),
    "becomes_payable": ("{payer} 欠 {payee} {amount} 转为应付（{count} 笔）",
                        "{payer} owes {payee} {amount}, now payable ({count} orders and clicks)"),
    "due_in_total": ("合计 {amount} 转为应付（{count} 笔订单和点击）", "{amount} in all becomes payable ({count} orders and clicks)"),
    "sheet_title": ("结算单 · {when}", "Settlement sheet · {when}"),
    "settlement_cut": ("{period} 结算后（结算截止 {end}，{zone}）",
                       "right after the {period} settlement (period end {end}, {zone})"),
    "ledger_now": ("当前账面", "as the ledger stands"),
    "projected": ("{period} 结算后的预估（结算截止 {end}，{zone}）",
                  "projected after the {period} settlement (period end {end}, {zone})"),
    "logs_missing": ("注意：以下分区尚未读到该结算，未计入：{logs}",
                     "note: these logs have not folded that settlement and are left out: {logs}"),
    "published_now": ("已发布 {event_id}（{what}）到 {count} 个分区", "published {event_id} ({what}) to {count} partitions"),
    "published_before": ("{event_id}（{what}）此前已发布到 {count} 个分区（最早 {when}），本次未重复发布",
                         "{event_id} ({what}) was published before to {count} partitions (first at {when}); "
                         "not published again"),
    "published_rest": ("{event_id} 此前只发布到 {before} 个分区，本次补发到其余 {count} 个",
                       "{event_id} had reached {before} partitions; published to the other {count} now"),
    "settlement_what": ("结算截止 {end}", "period end {end}"),
    "close_what": ("关账至 {end}", "books closed through {end}"),
    "dry_run": ("试算：未发布任何事件", "dry run: nothing was published"),
    "preview_title": ("{period} 结算将转为应付的金额（结算截止 {end}，{zone}）：",
                      "What the {period} settlement makes payable (period end {end}, {zone}):"),
    "already_folded": ("账本中已有该期结算 {event_ids}；以下为再次结算时的变化",
                       "the ledger already holds this period's settlement {event_ids}; "
                       "figures show what another would move"),
    "sheet_later": ("账本读到结算后，运行：{command}", "once the ledger has folded it: {command}"),
    "statement_title": ("{shop} 的 {period} 对账单（{start} 至 {end}，{zone}）",
                        "Statement of {shop} for {period} ({start} to {end}, {zone})"),
    "order_title": ("订单 {order} · {merchant}（{log}）", "Order {order} at {merchant} ({log})"),
    "order_refused": ("{time}  金额 {total}  事件 {event}  已隔离：{reason}（{position}），未计入",
                      "{time}  total {total}  event {event}  quarantined: {reason} ({position}), not folded"),
    "order_line": ("{time}  访客 {visitor}  金额 {total}  事件 {event}",
                   "{time}  visitor {visitor}  total {total}  event {event}"),
    "unattributed": ("未归因：没有符合条件的点击，不产生佣金", "unattributed: no eligible click, no commission"),
    "attributed": ("胜出点击 {click}，推荐方 {referrer}，协议 {agreement} v{version}（{terms}），佣金 {commission}",
                   "winning click {click}, referrer {referrer}, agreement {agreement} v{version} ({terms}), "
                   "commission {commission}"),
    "clicks": ("{count} 次点击", "{count} click(s)"),
    "swap_balance": ("{shop} 给 {other} 导流 {given} 次，收到 {received} 次（差额 {balance}）",
                     "{shop} sent {other} {given} clicks and received {received} (balance {balance})"),
    # the operator's view (SPEC §14)
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
    "sheet_intro": ("{period} 已结算（结算截止 {end}）。结算后各方之间的应付款两两轧差：左为各方合计，右为最大的几笔转账（{currency}）。",
                    "{period} is settled (up to {end}). Payable right after the settlement, netted per pair: each "
                    "party's totals, and the largest transfers ({currency})."),
    "more_transfers": ("另有 {count} 笔较小的转账，见 refledger sheet。", "{count} smaller transfers: see refledger sheet."),
    "member_count": ("{count} 家", "{count}"),
}

_LABELS = {
    "fund": ("联盟基金", "the alliance fund"),
    "shop_id": ("店铺", "shop"),
    "currency": ("币种", "currency"),
    "earned_pending": ("待结算收入", "earned pending"),
    "earned_payable": ("应收", "earned payable"),
    "owed_pending": ("待结算支出", "owed pending"),
    "owed_payable": ("应付", "owed payable"),
    "received": ("已收", "received"),
    "paid_out": ("已付", "paid out"),
    "swap_given": ("导出点击", "clicks given"),
    "swap_received": ("导入点击", "clicks received"),
    "balances": ("各店余额", "Balances"),
    "swap_credits": ("资源互换点击", "Swap traffic credits"),
    "transfers": ("转账", "Transfers"),
    "fund_lines": ("联盟基金", "The alliance fund"),
    "totals": ("各方合计", "Totals per party"),
    "to_pay": ("应付", "to pay"),
    "to_receive": ("应收", "to receive"),
    "nothing_due": ("无应付款项", "Nothing is due"),
    "amount": ("金额", "amount"),
    "event_type": ("类型", "type"),
    "role": ("记账", "role"),
    "account": ("科目", "account"),
    "change": ("变动", "change"),
    "agreement": ("协议", "agreement"),
    "rate_bp": ("费率(基点)", "rate (bp)"),
    "reason": ("原因", "reason"),
    "meaning": ("说明", "meaning"),
    "position": ("位置", "position"),
    "detail": ("详情", "detail"),
    "stage": ("阶段", "stage"),
    "quarantine": ("隔离的事件", "quarantined events"),
    "they_owe_payable": ("对方应付", "they owe (payable)"),
    "we_owe_payable": ("本店应付", "we owe (payable)"),
    "says": ("结算", "settles as"),
    "they_owe_pending": ("对方待结算", "they owe (pending)"),
    "we_owe_pending": ("本店待结算", "we owe (pending)"),
    "yes": ("是", "yes"),
    "no": ("否", "no"),
    "clicks_considered": ("考虑过的点击", "Clicks considered"),
    "entries": ("分录", "Entries"),
    "refunds": ("退款", "Refunds"),
    "seq": ("序号", "seq"),
    "referrer_shop_id": ("推荐方", "referrer"),
    "merchant_shop_id": ("商家", "merchant"),
    "eligible": ("符合条件", "eligible"),
    "status": ("处理", "status"),
    "amount_minor": ("金额", "amount"),
    "order_id": ("订单", "order"),
    "topic": ("主题", "topic"),
    "partition": ("分区", "partition"),
    "offset": ("偏移", "offset"),
    "parked_refunds": ("等待订单的退款", "Parked refunds"),
    "opening": ("期初余额", "Opening balances"),
    "closing": ("期末余额", "Closing balances"),
    "entries_in": ("{period} 的 {count} 笔分录", "{count} entries in {period}"),
    "netting": ("月末应付款轧差", "Netting of payable balances at the month's close"),
    "counterparty_shop_id": ("对方", "counterparty"),
    "occurred_at": ("时间", "time"),
    "event_id": ("事件", "event"),
    "click_event_id": ("点击", "click"),
    "refund_id": ("退款", "refund"),
    "given": ("本月导出点击", "clicks given"),
    "clicks_received": ("本月导入点击", "clicks received"),
    "given_to_date": ("累计导出", "given to date"),
    "received_to_date": ("累计导入", "received to date"),
    "balance": ("差额", "balance"),
    # the operator's view (SPEC §14)
    "referrer": ("引流方", "referrer"),
    "merchant": ("成交方", "merchant"),
    "views": ("曝光", "views"),
    "clicks": ("点击", "clicks"),
    "uv": ("访客", "UV"),
    "orders": ("订单", "orders"),
    "gmv": ("成交额", "GMV"),
    "commission": ("佣金", "commission"),
    "conversion": ("转化率", "conversion"),
    "uv_yield": ("每访客成交额", "GMV per UV"),
    "rank": ("排名", "rank"),
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
    "party": ("结算方", "party"),
    "net": ("净额（+收 / −付）", "net (+ receives)"),
    "up_to": ("截至 {at}", "up to {at}"),
    "to_date": ("截至最新事件", "up to the latest event"),
    "members": ("成员", "members"),
    "member_status": ("状态", "status"),
}


def chinese(locale: str = DEFAULT_LOCALE) -> bool:
    return locale.lower().startswith("zh")


def say(key: str, locale: str = DEFAULT_LOCALE, **values) -> str:
    """A sentence in the locale's language: ``say("pays", payer=…, payee=…, amount="¥5.00")``."""
    zh, en = _SENTENCES[key]
    return (zh if chinese(locale) else en).format(**values)


def label(key: str, locale: str = DEFAULT_LOCALE, **values) -> str:
    """A column name or title in the locale's language (the key itself when none is written)."""
    pair = _LABELS.get(key)
    if pair is None:
        return key
    return (pair[0] if chinese(locale) else pair[1]).format(**values)


# Why a click did or did not win an order, as the fold writes it (ledger.attribution), in Chinese.
_CLICK_REASONS = (
    (re.compile(r"last eligible click: wins"), "最后一次符合条件的点击：胜出"),
    (re.compile(r"eligible, but a later click wins"), "符合条件，但更晚的点击胜出"),
    (re.compile(r"after the order"), "点击晚于订单"),
    (re.compile(r"self-referral"), "自我推荐"),
    (re.compile(r"referrer not yet a member at the click"), "点击时推荐方尚未入盟"),
    (re.compile(r"referrer (\S+) at the click"), "点击时推荐方状态为 {0}"),
    (re.compile(r"no agreement in effect \(model none\)"), "没有生效的协议（模式 none）"),
    (re.compile(r"agreement model (\S+)"), "协议模式 {0} 不按订单计佣"),
    (re.compile(r"outside (\d+)-day window"), "超出 {0} 天归因窗口"),
)


# What each quarantine reason code means (SPEC §4), for the quarantine table.
_QUARANTINE_REASONS = {
    "undecodable": ("无法解码", "cannot be decoded"),
    "schema_invalid": ("不符合事件格式", "does not fit the event schema"),
    "unknown_shop": ("店铺从未入盟", "a shop that was never a member"),
    "shop_mismatch": ("发出方不是该类事件应有的一方", "sent by a party other than the one the type requires"),
    "negative_amount": ("金额为负", "a negative amount"),
    "total_mismatch": ("总额与明细不符", "total differs from its lines"),
    "unknown_currency": ("未知币种", "an unknown currency"),
    "currency_mismatch": ("币种与订单或协议不符", "currency differs from the order's or agreement's"),
    "refund_exceeds_order": ("退款超过订单金额", "refunds exceed the order"),
    "conflicting_duplicate": ("同一事件 id 内容不同", "same event id, different content"),
    "duplicate_order": ("订单号已用于另一事件", "order id already folded under another event"),
    "retroactive_agreement": ("协议生效早于发布", "agreement effective before it was sent"),
    "payout_exceeds_payable": ("付款超过应付", "payout exceeds what is payable"),
    "bad_signature": ("签名无效", "bad signature"),
    "period_closed": ("账期已关闭", "period closed"),
    "future_close": ("关闭到未来的日期", "closes a date still to come"),
    "personal_data": ("含个人信息（已脱敏保存）", "personal data (kept redacted)"),
}


def quarantine_reason(reason: str, locale: str = DEFAULT_LOCALE) -> str:
    """What a quarantine reason code means, in the locale's language (the code itself when unknown)."""
    pair = _QUARANTINE_REASONS.get(reason)
    return reason if pair is None else pair[0 if chinese(locale) else 1]


_MONEY = r"(-?\d+) ([A-Z]{3})"  # an amount in minor units and its currency, as the fold writes them
_TIME = r"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z)"  # a time as the fold writes it (UTC)
# The fold's details that carry money or times, by reason, matched whole: the ids and names an event
# brought are kept as they are, whatever they look like (an order id may read like a time).
_DETAILS = {
    "payout_exceeds_payable": re.compile(rf"(.*) {_MONEY} payable, payout is {_MONEY}", re.S),
    "refund_exceeds_order": re.compile(rf"refunds would total {_MONEY} of an order of {_MONEY}"),
    "period_closed": re.compile(rf"(\w+) of {_TIME}: the books are closed through {_TIME}"),
    "future_close": re.compile(rf"closes through {_TIME}, later than the close itself \({_TIME}\)"),
}


def quarantine_detail(reason: str, detail: str | None, locale: str, zone) -> str | None:
    """The fold's detail of a quarantined event for people: the amounts of money it states as money,
    its times in the alliance's zone. JSON and CSV keep the fold's words; a field's value quoted
    from the event (``total_minor 10000``) stays as the event wrote it."""
    from refledger.schemas.codec import parse_time
    from refledger.schemas.periods import show_time

    pattern = _DETAILS.get(reason)
    match = pattern.fullmatch(detail) if pattern is not None and detail else None
    if match is None:
        return detail
    parts = match.groups()

    def money(amount: str, currency: str) -> str:
        return format_money(int(amount), currency, locale)

    def moment(text: str) -> str:
        return show_time(parse_time(text), zone, seconds=True)

    if reason == "payout_exceeds_payable":
        who, owed, currency, paid, paid_currency = parts
        return f"{who} {money(owed, currency)} payable, payout is {money(paid, paid_currency)}"
    if reason == "refund_exceeds_order":
        total, currency, order, order_currency = parts
        return f"refunds would total {money(total, currency)} of an order of {money(order, order_currency)}"
    if reason == "period_closed":
        kind, at, through = parts
        return f"{kind} of {moment(at)}: the books are closed through {moment(through)}"
    through, at = parts
    return f"closes through {moment(through)}, later than the close itself ({moment(at)})"


def click_reason(reason: str, locale: str = DEFAULT_LOCALE) -> str:
    """The fold's reason for a click considered, in the locale's language (as written when unknown)."""
    if not chinese(locale):
        return reason
    for pattern, words in _CLICK_REASONS:
        match = pattern.fullmatch(reason)
        if match:
            return words.format(*(label(value, locale) for value in match.groups()))  # a status: 暂停
    return reason


def party(shop_id: str, locale: str = DEFAULT_LOCALE) -> str:
    """A party as people name it: shops by their id, the fund as 联盟基金 / the alliance fund."""
    return label("fund", locale) if shop_id == FUND else shop_id


def pays(payer: str, payee: str, amount_minor: int, currency: str, locale: str = DEFAULT_LOCALE) -> str:
    """``j-jade 付给 h-hats ¥5.00`` (zh_CN), ``j-jade pays h-hats CN¥5.00`` (en_US)."""
    return say("pays", locale, payer=party(payer, locale), payee=party(payee, locale),
               amount=format_money(amount_minor, currency, locale))


def amount(amount_minor: int, currency: str, locale: str = DEFAULT_LOCALE) -> str:
    """An entry's amount for people: money as money, swap credits (currency CLICK) as clicks."""
    if currency == CLICK:
        return say("clicks", locale, count=format_count(amount_minor, locale))
    return format_money(amount_minor, currency, locale)
