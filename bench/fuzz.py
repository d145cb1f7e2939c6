"""Coverage-guided fuzzing of every reader of event input: Kafka values, JSON Lines files, Avro files.

Run: ``python bench/fuzz.py --minutes 5`` (``--seconds``, ``--runs N`` per target, ``--seed``,
``--targets message,json,container``, ``--corpus DIR`` to keep what was found between runs).

The targets are in `tests/fuzz_targets.py`: ``message`` (a Kafka value: every reader of Avro
bytes, the consumer's decode step, the event columns and the fold), ``json`` (a `.jsonl` file,
as ingest reads it) and ``container`` (a `.avro` file, as ingest reads it). A finding is any
disagreement between readers, any exception other than the codec's errors, or an event the
fold cannot take.

With atheris (``pip install atheris``, or the project's ``fuzz`` extra) each target runs in a
process of its own under libFuzzer, the refledger modules instrumented, from valid seeds;
the report gives libFuzzer's coverage (``cov``: edges, ``ft``: features) and corpus. Without
it, the seeded mutation engine of `tests/fuzz_targets.py` runs instead (no coverage figure).
Each finding's input is saved under ``--findings`` (default ``bench/fuzz-findings/``); the exit
status is 1 when there is any.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGETS = ("message", "json", "container")
MAX_LEN = {"message": 4096, "json": 16384, "container": 65536}


def _have_atheris() -> bool:
    try:
        import atheris  # noqa: F401
    except ImportError:
        return False
    return True


# ---------------------------------------------------------------- the child: one target, one engine


def _record(findings_file: Path, seen: set[str], target: str, problems: list[str], data: bytes) -> None:
    for problem in problems:
        if problem in seen or len(seen) >= 200:
            continue
        seen.add(problem)
        with findings_file.open("a", encoding="utf-8") as out:
            out.write(json.dumps({"target": target, "problem": problem, "input": data.hex()}) + "\n")


def _child(args) -> None:
    sys.path.insert(0, str(ROOT))
    findings_file = Path(args.findings_file)
    seen: set[str] = set()
    if args.engine == "mutation":
        from tests.fuzz_targets import run_mutations

        runs, findings = run_mutations(args.child, seed=args.seed, executions=args.runs or None,
                                       seconds=args.seconds)
        for problem, data in findings:
            _record(findings_file, seen, args.child, [problem], data)
        print(json.dumps({"executions": runs}))
        return
    import atheris

    # atheris follows coverage through Python code only: the hot path's modules run from their
    # source, not compiled (refledger/compiled.py)
    os.environ["REFLEDGER_PURE_PYTHON"] = "1"
    with atheris.instrument_imports(include=["refledger"]):
        import refledger.consumers.batch  # noqa: F401
        import refledger.consumers.folding  # noqa: F401
        import refledger.ledger.fold  # noqa: F401
        import refledger.schemas.codec  # noqa: F401
        import refledger.schemas.event_files  # noqa: F401
    from tests.fuzz_targets import FINDINGS, seeds

    corpus = Path(args.corpus)
    corpus.mkdir(parents=True, exist_ok=True)
    for data in seeds(args.child):
        (corpus / f"seed-{hashlib.sha1(data).hexdigest()[:16]}").write_bytes(data)
    check = FINDINGS[args.child]

    def one_input(data: bytes) -> None:
        problems = check(data)
        if problems:
            _record(findings_file, seen, args.child, problems, data)

    options = [sys.argv[0], str(corpus), f"-seed={args.seed}", f"-max_len={MAX_LEN[args.child]}",
               "-print_final_stats=1", "-timeout=30", "-rss_limit_mb=3072"]
    options += [f"-runs={args.runs}"] if args.runs else [f"-max_total_time={max(1, int(args.seconds))}"]
    atheris.Setup(options, one_input)
    atheris.Fuzz()


# ---------------------------------------------------------------- the parent: run each target, report


def _libfuzzer_figures(stderr: str) -> dict:
    figures = {}
    executed = re.findall(r"stat::number_of_executed_units:\s*(\d+)", stderr)
    if executed:
        figures["executions"] = int(executed[-1])
    progress = re.findall(r"cov: (\d+) ft: (\d+) corp: (\d+)/", stderr)
    if progress:
        cov, ft, corp = progress[-1]
        figures.update(coverage_edges=int(cov), coverage_features=int(ft), corpus=int(corp))
    return figures


def run_target(target: str, *, engine: str, seconds: float, runs: int | None, seed: int, corpus: Path,
               scratch: Path) -> dict:
    findings_file = scratch / f"{target}.findings.jsonl"
    findings_file.unlink(missing_ok=True)
    command = [sys.executable, str(Path(__file__).resolve()), "--child", target, "--engine", engine,
               "--seconds", str(seconds), "--seed", str(seed), "--corpus", str(corpus / target),
               "--findings-file", str(findings_file)] + (["--runs", str(runs)] if runs else [])
    started = time.monotonic()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, errors="replace")
    elapsed = time.monotonic() - started
    result = {"target": target, "engine": engine, "seconds": round(elapsed, 1)}
    if engine == "atheris":
        result.update(_libfuzzer_figures(done.stderr))
    else:
        lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
        result.update(json.loads(lines[-1]) if lines else {})
    findings = []
    if findings_file.exists():
        findings = [json.loads(line) for line in findings_file.read_text(encoding="utf-8").splitlines()]
    if done.returncode != 0:
        tail = "\n".join(done.stderr.strip().splitlines()[-15:])
        findings.append({"target": target, "problem": f"the fuzzing process failed (exit {done.returncode}):\n{tail}",
                         "input": ""})
    result["findings"] = findings
    if result.get("executions") and elapsed:
        result["executions_per_second"] = int(result["executions"] / elapsed)
    return result


def _save(findings: list[dict], directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for finding in findings:
        data = bytes.fromhex(finding["input"])
        path = directory / f"{finding['target']}-{hashlib.sha1(data).hexdigest()[:12]}.bin"
        path.write_bytes(data)
        finding["saved"] = str(path)


def _print_report(report: dict) -> None:
    print(f"fuzzing {', '.join(report['targets'])}: engine {report['engine']}, seed {report['seed']}, "
          f"{report['seconds']:.0f} s")
    print(f"{'target':<10} {'seconds':>8} {'executions':>12} {'exec/s':>8} {'cov':>6} {'ft':>7} {'corpus':>7} "
          f"{'findings':>9}")
    for r in report["results"]:
        print(f"{r['target']:<10} {r['seconds']:>8.1f} {r.get('executions', 0):>12,} "
              f"{r.get('executions_per_second', 0):>8,} {r.get('coverage_edges', '-'):>6} "
              f"{r.get('coverage_features', '-'):>7} {r.get('corpus', '-'):>7} {len(r['findings']):>9}")
    findings = [f for r in report["results"] for f in r["findings"]]
    if not findings:
        print("no findings")
    for finding in findings[:30]:
        print(f"\n[{finding['target']}] {finding['problem']}\n  input: {finding.get('saved', '(none)')}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=5.0, help="total time, shared by the targets")
    parser.add_argument("--seconds", type=float, default=None, help="total time in seconds (instead of --minutes)")
    parser.add_argument("--runs", type=int, default=None, help="executions per target instead of a time")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--targets", default=",".join(TARGETS))
    parser.add_argument("--engine", choices=("auto", "atheris", "mutation"), default="auto")
    parser.add_argument("--corpus", default=None, help="keep each target's corpus here between runs")
    parser.add_argument("--findings", default=str(ROOT / "bench" / "fuzz-findings"),
                        help="where each finding's input is saved")
    parser.add_argument("--format", choices=("table", "json"), default="table")
    parser.add_argument("--child", choices=TARGETS, help=argparse.SUPPRESS)
    parser.add_argument("--findings-file", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child(args)
        return 0
    targets = [t for t in args.targets.split(",") if t]
    unknown = set(targets) - set(TARGETS)
    if unknown:
        parser.error(f"unknown targets: {', '.join(sorted(unknown))}")
    engine = args.engine if args.engine != "auto" else ("atheris" if _have_atheris() else "mutation")
    total = args.seconds if args.seconds is not None else args.minutes * 60
    with tempfile.TemporaryDirectory(prefix="refledger-fuzz-") as scratch:
        corpus = Path(args.corpus) if args.corpus else Path(scratch) / "corpus"
        started = time.monotonic()
        results = [run_target(target, engine=engine, seconds=total / len(targets), runs=args.runs, seed=args.seed,
                              corpus=corpus, scratch=Path(scratch)) for target in targets]
    findings = [f for r in results for f in r["findings"] if f["input"]]
    if findings:
        _save(findings, Path(args.findings))
    report = {"engine": engine, "seed": args.seed, "targets": targets, "seconds": time.monotonic() - started,
              "results": results, "findings": sum(len(r["findings"]) for r in results)}
    if args.format == "json":
        print(json.dumps(report, indent=2))
    else:
        _print_report(report)
    return 1 if report["findings"] else 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    sys.exit(main())
