"""Mutation testing: does the suite fail when one rule of the ledger is broken?

Run on demand (it takes long; it is not part of CI and not a test):

    pip install -e '.[test,mutation]'
    python bench/mutation.py                      # every target
    python bench/mutation.py --target bulk-rules  # one target
    python bench/mutation.py --list               # the targets and their tests
    python bench/mutation.py --target ledger --sample 5   # a fixed 1-in-5 sample, with its interval

Two kinds of mutants, every one a small change to one rule:

* **mutmut** (targets ``ledger``, ``bulk``, ``schemas``): mutmut 3 changes one
  operator, constant, comparison or argument at a time inside the functions of
  ``ledger/``, ``replay/bulk.py`` and ``schemas/`` and runs, for each mutant,
  the tests of the target's subset that execute that function (it records
  which ones in a first pass), each in a forked process.
* **rules** (targets ``bulk-rules``, ``ledger-rules``): the SQL of
  ``replay/bulk.py`` is text that mutmut does not touch, and a few rules of
  the fold are module constants; each mutant here replaces one clause (an
  inclusive bound made strict, a tie-break reversed, a join key dropped, ...)
  and runs the target's tests.

Everything runs in a scratch copy under ``build/mutation/<target>/``, laid out
as the installed package (``refledger/ledger/`` for ``ledger/`` and so on), so
the checkout is never modified. The score is killed / (all − equivalent):
mutants judged equivalent (no test can tell them apart from the original) are
listed by name in docs/testing.md, each with its reason; every other
survivor is printed with its diff. The report is also written to
``build/mutation/report.json``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "build" / "mutation"
DOC = ROOT / "docs" / "testing.md"
LAYERS = ("schemas", "ledger", "store", "producers", "consumers", "replay", "reports")
NOT_KAFKA = ["-m", "not kafka and not slow", "-p", "no:cacheprovider", "-p", "no:randomly"]
# each mutant meets the same examples (tests/examples.py), a quarter of each property's own number
UNDER_MUTATION = ["--hypothesis-profile=mutation"]
EXAMPLES_SCALE = "0.25"

# appended to the scratch copy's tests/conftest.py: a mutant's tests run fastest first (by the
# durations mutmut recorded in its first pass), so a killed mutant is usually killed in a second
FASTEST_FIRST = """

def pytest_collection_modifyitems(config, items):
    import json
    try:
        with open("mutmut-stats.json", encoding="utf-8") as f:
            seconds = json.load(f)["duration_by_test"]
    except (OSError, ValueError, KeyError):
        return
    items.sort(key=lambda item: seconds.get(item.nodeid, 0.0))
"""


@dataclass(frozen=True)
class Rule:
    """One hand-written mutant: ``old`` (found exactly once in ``path``) replaced by ``new``."""

    name: str
    path: str
    old: str
    new: str


@dataclass
class Target:
    name: str
    tests: list[str]
    mutate: list[str] = field(default_factory=list)   # mutmut: globs in the scratch layout
    leave: list[str] = field(default_factory=list)    # mutmut: globs it leaves alone (code only Kafka tests run)
    rules: list[Rule] = field(default_factory=list)    # hand-written rule mutants


BULK = "replay/bulk.py"
BULK_RULES = [
    Rule("window made exclusive", BULK, "t - click_t <= a_window_days", "t - click_t < a_window_days"),
    Rule("window prefilter made exclusive", BULK, "o.t - c.t <= (SELECT max(window_days)",
         "o.t - c.t < (SELECT max(window_days)"),
    Rule("window prefilter one day short", BULK, "(SELECT max(window_days) FROM b_agr) * ",
         "((SELECT max(window_days) FROM b_agr) - 1) * "),
    Rule("click after the order counted", BULK, "AND c.t <= o.t AND c.base_ok", "AND c.t <= o.t + 1 AND c.base_ok"),
    Rule("click tie-break reversed", BULK, "ORDER BY click_t DESC, click_id DESC", "ORDER BY click_t DESC, click_id ASC"),
    Rule("first click wins", BULK, "ORDER BY click_t DESC, click_id DESC", "ORDER BY click_t ASC, click_id DESC"),
    Rule("event id before time", BULK, "ORDER BY click_t DESC, click_id DESC", "ORDER BY click_id DESC, click_t DESC"),
    Rule("self-referral allowed", BULK, "c.shop_id <> c.merchant_shop_id AND ", ""),
    Rule("status after the click", BULK, "c.shop_id = s.shop AND c.t >= s.t", "c.shop_id = s.shop AND c.t > s.t"),
    Rule("status tie by smaller event id", BULK, "arg_max(status, event_id)", "arg_min(status, event_id)"),
    Rule("any member status earns", BULK, "coalesce(s.status = 'active', false)", "coalesce(s.status IS NOT NULL, false)"),
    Rule("attribution ignores the visitor", BULK, "AND c.visitor = o.visitor ", ""),
    Rule("agreement in effect after effective_from", BULK,
         "AND a1.m = q.merchant AND a1.r = q.referrer AND q.t >= a1.effective_from",
         "AND a1.m = q.merchant AND a1.r = q.referrer AND q.t > a1.effective_from"),
    Rule("timeline lookup after the breakpoint", BULK, "AND {alias}.t >= tl.t", "AND {alias}.t > tl.t"),
    Rule("(*, R) before (M, *)", BULK, "coalesce(s.k1, s.k2, s.k3, s.k4)", "coalesce(s.k1, s.k3, s.k2, s.k4)"),
    Rule("version tie by smaller version", BULK, "ORDER BY version DESC, agreement_id DESC",
         "ORDER BY version ASC, agreement_id DESC"),
    Rule("cpc prices orders", BULK, "WHERE a_model IN ('cps', 'cpa') AND", "WHERE a_model IN ('cps', 'cpa', 'cpc') AND"),
    Rule("category rate ignored", BULK, "coalesce(cr.rate_bp, w.a_rate_bp, 0)", "coalesce(w.a_rate_bp, 0)"),
    Rule("half up becomes half down", BULK,
         "((2 * abs(CAST({num} AS HUGEINT)) + CAST({den} AS HUGEINT))",
         "((2 * abs(CAST({num} AS HUGEINT)) + CAST({den} AS HUGEINT) - 1)"),
    Rule("refund reversal truncated", BULK, 'ELSE {_half_up("c * a", "total")} END', "ELSE (c * a) // total END"),
    Rule("a full refund reverses nothing", BULK, "WHEN a >= total THEN c", "WHEN a >= total THEN 0"),
    Rule("24 hours made strict", BULK, "ON f.cid = c.cid AND f.t >= c.due", "ON f.cid = c.cid AND f.t > c.due"),
    Rule("24 hours one ms short", BULK, "t + {DAY_MS} AS due", "t + {DAY_MS} - 1 AS due"),
    Rule("chain ignores the visitor", BULK,
         "PARTITION BY topic, partition, visitor, referrer, merchant ORDER BY t, event_id",
         "PARTITION BY topic, partition, referrer, merchant ORDER BY t, event_id"),
    Rule("chain order by event id first", BULK, "ORDER BY t, event_id) AS rn", "ORDER BY event_id, t) AS rn"),
    Rule("swap earns money", BULK, "CASE WHEN tl.a_model = 'swap' THEN 'CLICK' ELSE tl.a_currency END",
         "tl.a_currency"),
    Rule("payouts counted as received twice", BULK,
         "UNION ALL SELECT referrer, currency, 0, 0, amount, 0 FROM b_moves WHERE kind = 'payout'",
         "UNION ALL SELECT referrer, currency, amount, 0, amount, 0 FROM b_moves WHERE kind = 'payout'"),
    Rule("adjustments ignored", BULK,
         "UNION ALL SELECT referrer, currency, amount, 0, 0, 0 FROM b_moves WHERE kind = 'adjustment' AND amount <> 0",
         "UNION ALL SELECT referrer, currency, 0, 0, 0, 0 FROM b_moves WHERE kind = 'adjustment' AND amount <> 0"),
    Rule("quarantined events counted", BULK, "WHERE stage = 'fold' AND event_id IS NOT NULL",
         "WHERE stage = 'nothing' AND event_id IS NOT NULL"),
    Rule("default window 16 days", BULK, "DEFAULT_DAYS = 15", "DEFAULT_DAYS = 16"),
]

LEDGER_RULES = [
    Rule("a day one millisecond long", "ledger/events.py", "DAY_MS = 86_400_000", "DAY_MS = 86_399_999"),
    Rule("default window 14 days", "ledger/events.py", "15 if window is None else", "14 if window is None else"),
    Rule("default hold 16 days", "ledger/events.py", "15 if hold is None else", "16 if hold is None else"),
    Rule("basis points of 1000", "ledger/pricing.py", "BP = 10_000", "BP = 1_000"),
    Rule("genesis of ones", "ledger/chain.py", 'GENESIS = "0" * 64', 'GENESIS = "1" * 64'),
    Rule("chain without prev_hash", "ledger/chain.py", "hashlib.sha256(bytes.fromhex(prev_hash) + canonical)",
         "hashlib.sha256(canonical)"),
    Rule("chain without the reason", "ledger/chain.py", """f'"reason":{"null" if reason is None else enc(reason)},'""",
         "''"),
    Rule("chain keeps ASCII escapes", "ledger/chain.py", "ensure_ascii=False).encode", "ensure_ascii=True).encode"),
    # the survivors an outside review found, kept here so every run checks them by name
    Rule("24 hours made strict when a click arrives out of order", "ledger/clicks.py",
         "click.occurred_at - last >= DAY_MS", "click.occurred_at - last > DAY_MS"),
    Rule("24 hours made strict when a click arrives in order", "ledger/clicks.py",
         "if c.occurred_at <= since:", "if c.occurred_at < since:"),
    Rule("member status read at the order's time", "ledger/attribution.py",
         "status = status_at(referrer, at)", "status = status_at(referrer, t)"),
    Rule("window made exclusive in the fold", "ledger/attribution.py",
         "if t - at > agreement.attribution_window_days * DAY_MS:",
         "if t - at >= agreement.attribution_window_days * DAY_MS:"),
    Rule("click tie-break reversed in the fold", "ledger/attribution.py",
         "winner, winner_agreement = click, agreement  # sorted",
         "winner, winner_agreement = (click, agreement) if winner is None or click.occurred_at > winner.occurred_at "
         "else (winner, winner_agreement)  # sorted"),
    Rule("settlement hold made exclusive", "ledger/settlement.py",
         "s.occurred_at <= period_end - s.terms.hold_days * DAY_MS", "s.occurred_at < period_end - s.terms.hold_days * DAY_MS"),
]

BOUNDARIES = "tests/test_boundaries.py"
TARGETS = {
    "ledger": Target("ledger", mutate=["refledger/ledger/*"], tests=[
        BOUNDARIES, "tests/test_chain_vectors.py", "tests/test_entries_as_read.py", "tests/test_ledger_rules.py",
        "tests/test_ledger_scenarios.py", "tests/test_ledger_properties.py", "tests/test_closing.py", "tests/test_times.py",
        "tests/test_closing_properties.py", "tests/test_snapshot.py", "tests/test_signed_events.py",
        "tests/test_signature_vectors.py"]),
    "bulk": Target("bulk", mutate=["refledger/replay/bulk.py"], tests=[
        BOUNDARIES, "tests/test_bulk.py", "tests/test_closing_properties.py", "tests/test_statement.py"]),
    # schemas/kafka_client.py is plumbing to a broker: only the Kafka tests run it, and the runs here
    # take the tests without Kafka
    "schemas": Target("schemas", mutate=["refledger/schemas/*"], leave=["refledger/schemas/kafka_client.py"], tests=[
        "tests/test_codec.py", "tests/test_schemas.py", "tests/test_traffic_reader.py", "tests/test_archive.py",
        "tests/test_canonical_bytes.py", "tests/test_signature_vectors.py", "tests/test_money_and_time.py",
        "tests/test_personal_data.py", "tests/test_readers_agree.py", "tests/test_damaged_container.py",
        "tests/test_deep_json.py", "tests/test_times.py", "tests/test_conform.py"]),
    "bulk-rules": Target("bulk-rules", rules=BULK_RULES, tests=[BOUNDARIES, "tests/test_bulk.py"]),
    "ledger-rules": Target("ledger-rules", rules=LEDGER_RULES, tests=[
        BOUNDARIES, "tests/test_chain_vectors.py", "tests/test_entries_as_read.py", "tests/test_ledger_rules.py",
        "tests/test_ledger_scenarios.py"]),
}


# -- the scratch copy -----------------------------------------------------------------------------


def lay_out(scratch: Path) -> None:
    """Copy the checkout into ``scratch`` as the installed package: refledger/<layer>/ for each
    layer folder, with tests, docs and the scenarios beside it."""
    if scratch.exists():
        shutil.rmtree(scratch)
    # the copy runs every module from its source: mutants are made in the source (refledger/compiled.py)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".hypothesis", "*.duckdb*", "*.so", "*.compiled-from")
    shutil.copytree(ROOT / "refledger", scratch / "refledger", ignore=ignore)
    for layer in LAYERS:
        shutil.copytree(ROOT / layer, scratch / "refledger" / layer, ignore=ignore)
    for extra in ("tests", "docs"):
        shutil.copytree(ROOT / extra, scratch / extra, ignore=ignore)
    shutil.copy2(ROOT / "README.md", scratch / "README.md")
    with open(scratch / "tests" / "conftest.py", "a", encoding="utf-8") as conftest:
        conftest.write(FASTEST_FIRST)


def in_layout(path: str) -> str:
    """replay/bulk.py → refledger/replay/bulk.py"""
    return f"refledger/{path}" if path.split("/", 1)[0] in LAYERS else path


def pyproject(target: Target) -> str:
    def toml_list(items):
        return "[" + ", ".join(json.dumps(i) for i in items) + "]"

    return f"""[tool.pytest.ini_options]
testpaths = ["tests"]
pythonpath = ["."]
empty_parameter_set_mark = "fail_at_collect"
filterwarnings = ["ignore:.*is deprecated. Use files\\\\(\\\\) instead:DeprecationWarning"]
markers = ["kafka: needs a real Kafka broker", "slow: long-running crash, volume and whole-ledger tests"]

[tool.mutmut]
source_paths = ["refledger"]
only_mutate = {toml_list(target.mutate)}
do_not_mutate = {toml_list(target.leave)}
pytest_add_cli_args_test_selection = {toml_list(target.tests)}
pytest_add_cli_args = {toml_list(NOT_KAFKA + UNDER_MUTATION)}
use_git_change_detection = false
also_copy = ["docs/", "README.md"]
"""


# -- running ----------------------------------------------------------------------------------------

# mutmut's own first step, alone: the mutants written into mutants/, none run, so that a sample can be
# drawn from their names (the calls mutmut's `run` makes before it collects the tests' coverage)
GENERATE = """
import os, sys
import mutmut.__main__ as m
m.set_mutant_under_test("mutant_generation")
os.makedirs("mutants", exist_ok=True)
m.copy_src_dir(); m.copy_also_copy_files(); m.setup_source_paths(); m.store_lines_covered_by_tests()
m.create_mutants(int(sys.argv[1]))
"""


def exit_codes(scratch: Path) -> dict[str, int | None]:
    """Every mutant mutmut made in ``scratch`` and its test run's exit code (None: not run)."""
    codes = {}
    for meta in sorted((scratch / "mutants").rglob("*.py.meta")):
        codes.update(json.loads(meta.read_text(encoding="utf-8")).get("exit_code_by_key", {}))
    return codes


def in_sample(name: str, one_in: int) -> bool:
    """A fixed 1-in-``one_in`` sample: a mutant is in it by a hash of its name alone, so every run of
    the same code draws the same mutants and each mutant is equally likely to be drawn."""
    digest = hashlib.blake2b(name.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % one_in == 0


def make_mutants(target: Target, scratch: Path, children: int, log) -> None:
    """mutmut's mutants of the scratch copy's code, none run (the mutants of changed functions anew)."""
    (scratch / "pyproject.toml").write_text(pyproject(target), encoding="utf-8")
    made = subprocess.run([sys.executable, "-c", GENERATE, str(children)], cwd=scratch, stdout=log,
                          stderr=subprocess.STDOUT, env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
    if made.returncode != 0:
        raise SystemExit(f"mutmut could not make the mutants of {target.name}; see {log.name}")


def sample_of(target: Target, scratch: Path, one_in: int, children: int, log) -> list[str]:
    make_mutants(target, scratch, children, log)
    everyone = sorted(exit_codes(scratch))
    drawn = [name for name in everyone if in_sample(name, one_in)]
    log.write(f"--- sample 1 in {one_in}: {len(drawn)} of {len(everyone)} mutants\n")
    return drawn


def wilson_interval(killed: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95 % interval of a proportion measured on a sample (Wilson's score interval), in percent."""
    if n == 0:
        return (100.0, 100.0)
    p = killed / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * ((p * (1 - p) / n + z * z / (4 * n * n)) ** 0.5) / (1 + z * z / n)
    return (round(100 * (centre - half), 1), round(100 * min(1.0, centre + half), 1))


def run_mutmut(target: Target, scratch: Path, children: int, log, run: bool = True,
               names: list[str] = ()) -> list[dict]:
    """mutmut over the target (``names``: only these mutants, again)."""
    (scratch / "pyproject.toml").write_text(pyproject(target), encoding="utf-8")
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "REFLEDGER_EXAMPLES_SCALE": EXAMPLES_SCALE}
    if run:
        done = subprocess.run([sys.executable, "-m", "mutmut", "run", "--max-children", str(children), *names],
                              cwd=scratch, env=env, stdout=log, stderr=subprocess.STDOUT)
        if done.returncode != 0:
            raise SystemExit(f"mutmut failed on {target.name} (exit {done.returncode}); see {log.name}")
    from mutmut.stats import status_by_exit_code

    found = []
    for meta in sorted((scratch / "mutants").rglob("*.py.meta")):
        data = json.loads(meta.read_text(encoding="utf-8"))
        for name, code in sorted(data.get("exit_code_by_key", {}).items()):
            found.append({"name": name, "status": status_by_exit_code[code]})
    for mutant in found:
        if mutant["status"] in ("survived", "suspicious"):
            shown = subprocess.run([sys.executable, "-m", "mutmut", "show", mutant["name"]], cwd=scratch, env=env,
                                   capture_output=True, text=True)
            mutant["diff"] = shown.stdout.strip()
    return found


def survivors_of(scratch: Path) -> list[str]:
    """The mutants a finished mutmut run recorded as survivors (or run by no test)."""
    from mutmut.stats import status_by_exit_code

    return [name for name, code in exit_codes(scratch).items()
            if status_by_exit_code[code] in ("survived", "no tests", "suspicious")]


def refresh_checkout(scratch: Path) -> None:
    """The checkout's code, tests and docs into a kept scratch copy: mutmut makes the mutants of
    changed functions anew, and the survivors meet the new tests."""
    # the copy runs every module from its source: mutants are made in the source (refledger/compiled.py)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".hypothesis", "*.duckdb*", "*.so", "*.compiled-from")
    shutil.copytree(ROOT / "refledger", scratch / "refledger", ignore=ignore, dirs_exist_ok=True)
    for layer in LAYERS:
        shutil.copytree(ROOT / layer, scratch / "refledger" / layer, ignore=ignore, dirs_exist_ok=True)
    (scratch / APPLIED).unlink(missing_ok=True)  # found on the code before
    for where in (scratch, scratch / "mutants"):
        for extra in ("tests", "docs"):
            shutil.rmtree(where / extra, ignore_errors=True)
            shutil.copytree(ROOT / extra, where / extra, ignore=ignore)
        with open(where / "tests" / "conftest.py", "a", encoding="utf-8") as conftest:
            conftest.write(FASTEST_FIRST)


APPLIED = "killed-when-applied.json"  # in a scratch copy: what --apply-survivors found, for --report-only


def _applied_kills(scratch: Path) -> set[str]:
    try:
        return set(json.loads((scratch / APPLIED).read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return set()


def apply_and_test(target: Target, scratch: Path, mutants: list[dict], equivalent: dict[str, str], log) -> None:
    """Each survivor written into the source of a throwaway copy (`mutmut apply`) and the target's
    tests run on it: a survivor they fail on is "killed when applied". mutmut chooses a mutant when
    a function is called, after the tests' imports, so code that runs at import (schemas compiled
    into checkers, tables built once) keeps its original behaviour under its runner."""
    for mutant in mutants:
        if mutant["status"] not in ("survived", "suspicious", "no tests") or mutant["name"] in equivalent:
            continue
        copy = scratch.parent / f"{target.name}-applied"
        shutil.rmtree(copy, ignore_errors=True)
        shutil.copytree(scratch, copy, ignore=shutil.ignore_patterns("__pycache__", ".hypothesis"))
        try:
            env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
            applied = subprocess.run([sys.executable, "-m", "mutmut", "apply", mutant["name"]], cwd=copy, env=env,
                                     capture_output=True, text=True)
            if applied.returncode != 0:
                log.write(f"--- {mutant['name']}: mutmut apply failed\n{applied.stdout}{applied.stderr}\n")
                continue
            done = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", *NOT_KAFKA, *UNDER_MUTATION,
                                   *target.tests], cwd=copy, capture_output=True, text=True,
                                  env={**env, "REFLEDGER_EXAMPLES_SCALE": EXAMPLES_SCALE})
            log.write(f"--- {mutant['name']} applied: pytest exit {done.returncode}\n{done.stdout[-1500:]}\n")
            if done.returncode not in (0, 5):  # failed, or could not even import the code (5: no tests ran)
                mutant["status"] = "killed when applied"
                applied_kills = _applied_kills(scratch)
                applied_kills.add(mutant["name"])
                (scratch / APPLIED).write_text(json.dumps(sorted(applied_kills)), encoding="utf-8")
            print(f"  applied {mutant['name']}: {mutant['status']}", flush=True)
        finally:
            shutil.rmtree(copy, ignore_errors=True)


def run_rules(target: Target, scratch: Path, children: int, log) -> list[dict]:
    (scratch / "pyproject.toml").write_text(pyproject(target), encoding="utf-8")
    clean = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", *NOT_KAFKA, *target.tests], cwd=scratch,
                           capture_output=True, text=True, env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
    log.write(f"--- no mutant: exit {clean.returncode}\n{clean.stdout[-3000:]}\n")
    if clean.returncode != 0:
        raise SystemExit(f"{target.name}: the tests fail without any mutant; see {log.name}")

    def one(rule: Rule) -> dict:
        copy = scratch.parent / f"{target.name}-{target.rules.index(rule)}"
        shutil.copytree(scratch, copy, dirs_exist_ok=False)
        try:
            path = copy / in_layout(rule.path)
            source = path.read_text(encoding="utf-8")
            if source.count(rule.old) != 1:
                return {"name": rule.name, "status": "stale (its text is not in the source exactly once)",
                        "diff": f"{rule.path}: {rule.old!r}"}
            path.write_text(source.replace(rule.old, rule.new), encoding="utf-8")
            (copy / "pyproject.toml").write_text(pyproject(target), encoding="utf-8")
            started = time.perf_counter()
            done = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", *NOT_KAFKA, *target.tests],
                                  cwd=copy, capture_output=True, text=True,
                                  env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
            log.write(f"--- {rule.name}: exit {done.returncode} in {time.perf_counter() - started:.0f}s\n")
            log.write(done.stdout[-3000:] + "\n")
            status = {0: "survived", 1: "killed"}.get(done.returncode, f"error (pytest exit {done.returncode})")
            return {"name": rule.name, "status": status,
                    "diff": f"{rule.path}: {rule.old!r} → {rule.new!r}"}
        finally:
            shutil.rmtree(copy, ignore_errors=True)

    with ThreadPoolExecutor(children) as pool:
        return list(pool.map(one, target.rules))


def equivalent_mutants() -> dict[str, str]:
    """Mutant name → reason, from the table in docs/testing.md ('| `name` | reason |')."""
    if not DOC.exists():
        return {}
    text = DOC.read_text(encoding="utf-8").split("<!-- equivalent-mutants -->", 1)
    rows = re.findall(r"^\|\s*`([^`]+)`\s*\|\s*(.+?)\s*\|\s*$", text[1] if len(text) > 1 else "", re.M)
    return dict(rows)


def score(mutants: list[dict], equivalent: dict[str, str]) -> dict:
    # a mutant no test of the subset runs ("no tests") counts as a survivor: nothing would notice it
    counted = [m for m in mutants if m["status"] not in ("skipped", "not checked", "check was interrupted by user")]
    killed = [m for m in counted if m["status"] in ("killed", "timeout", "caught by type check",
                                                    "killed when applied")]
    judged = [m for m in counted if m not in killed and m["name"] in equivalent]
    survivors = [m for m in counted if m not in killed and m["name"] not in equivalent]
    denominator = len(counted) - len(judged)
    return {"mutants": len(mutants), "killed": len(killed), "equivalent": len(judged),
            "survived": len(survivors), "no tests": sum(m["status"] == "no tests" for m in survivors),
            "not run": len(mutants) - len(counted),
            "score": round(100 * len(killed) / denominator, 1) if denominator else 100.0,
            "survivors": survivors}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", action="append", choices=sorted(TARGETS), help="default: all")
    parser.add_argument("--max-children", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--list", action="store_true", help="print the targets and their tests")
    parser.add_argument("--resume", action="store_true",
                        help="keep the scratch copy of an interrupted mutmut run and go on where it stopped")
    parser.add_argument("--survivors", action="store_true",
                        help="bring the checkout's code and tests into the last mutmut run's copy and run "
                             "its survivors again (the rest of an interrupted run goes on with --resume)")
    parser.add_argument("--sample", type=int, metavar="N", default=1,
                        help="mutmut targets: test a fixed 1-in-N sample of the mutants (drawn by a hash of "
                             "each name), and report the score with its 95 %% interval")
    parser.add_argument("--apply-survivors", action="store_true",
                        help="mutmut targets: write each survivor into the source of a copy and run the tests "
                             "there (reaches code that runs at import, which mutmut's runner cannot)")
    parser.add_argument("--report-only", action="store_true",
                        help="report what the last mutmut run of each target recorded, running nothing")
    args = parser.parse_args(argv)
    if args.list:
        for t in TARGETS.values():
            what = f"{len(t.rules)} rule mutants" if t.rules else f"mutmut over {', '.join(t.mutate)}"
            print(f"{t.name}: {what}\n    tests: {' '.join(t.tests)}")
        return 0
    WORK.mkdir(parents=True, exist_ok=True)
    equivalent = equivalent_mutants()
    report = {}
    for name in args.target or list(TARGETS):
        target = TARGETS[name]
        scratch = WORK / name
        started = time.perf_counter()
        if args.report_only and (target.rules or not (scratch / "mutants").exists()):
            continue
        if not ((args.resume or args.report_only or args.survivors) and (scratch / "mutants").exists()):
            lay_out(scratch)
        with open(WORK / f"{name}.log", "a" if args.report_only or args.survivors else "w", encoding="utf-8") as log:
            if target.rules:
                mutants = run_rules(target, scratch, args.max_children, log)
            else:
                if args.survivors:  # every survivor again, against the checkout's code and tests
                    again = survivors_of(scratch)
                    refresh_checkout(scratch)
                    if args.sample > 1:  # and the sample's mutants of functions changed since
                        make_mutants(target, scratch, args.max_children, log)
                        codes = exit_codes(scratch)
                        again = sorted({name for name in again if name in codes}
                                       | {name for name, code in codes.items()
                                          if code is None and in_sample(name, args.sample)})
                    log.write(f"--- {len(again)} survivors run again\n")
                    mutants = run_mutmut(target, scratch, args.max_children, log, run=bool(again), names=again)
                elif args.sample > 1 and not (args.resume or args.report_only):
                    drawn = sample_of(target, scratch, args.sample, args.max_children, log)
                    mutants = run_mutmut(target, scratch, args.max_children, log, names=drawn)
                else:
                    mutants = run_mutmut(target, scratch, args.max_children, log, run=not args.report_only)
        if not target.rules:  # what an earlier --apply-survivors found, while the copy's code is the same
            applied_kills = _applied_kills(scratch)
            for mutant in mutants:
                if mutant["status"] in ("survived", "suspicious") and mutant["name"] in applied_kills:
                    mutant["status"] = "killed when applied"
        if args.apply_survivors and not target.rules:
            with open(WORK / f"{name}.log", "a", encoding="utf-8") as log:
                apply_and_test(target, scratch, mutants, equivalent, log)
        result = score(mutants, equivalent)
        result["applied"] = sum(m["status"] == "killed when applied" for m in mutants)
        result["minutes"] = round((time.perf_counter() - started) / 60, 1)
        counted = result["killed"] + result["survived"]
        if result["not run"] and counted:  # a sample, or an interrupted run: the score of those run
            result["interval"] = wilson_interval(result["killed"], counted)
        report[name] = result
        run = (f"{result['mutants'] - result['not run']} of {result['mutants']} mutants run"
               if result["not run"] else f"{result['mutants']} mutants")
        interval = (f", 95 % interval {result['interval'][0]}–{result['interval'][1]} %"
                    if "interval" in result else "")
        applied = f" ({result['applied']} of them when applied to the source)" if result["applied"] else ""
        print(f"{name}: {run}: {result['killed']} killed{applied}, {result['equivalent']} equivalent, "
              f"{result['survived']} survived (no test of the subset runs {result['no tests']} of them): "
              f"score {result['score']} %{interval} ({result['minutes']} min)", flush=True)
        for m in result["survivors"]:
            print(f"  SURVIVED {m['name']} ({m['status']})\n" + "\n".join(f"    {line}" for line in
                                                                           m.get("diff", "").splitlines()))
    all_counted = sum(r["killed"] + r["survived"] for r in report.values())
    all_killed = sum(r["killed"] for r in report.values())
    total = {"killed": all_killed, "non-equivalent": all_counted,
             "score": round(100 * all_killed / all_counted, 1) if all_counted else 100.0}
    report["total"] = total
    (WORK / "report.json").write_text(json.dumps(report, indent=2, ensure_ascii=False), encoding="utf-8")
    print(f"total: {all_killed} of {all_counted} non-equivalent mutants killed: {total['score']} %")
    return 0


if __name__ == "__main__":
    sys.exit(main())
