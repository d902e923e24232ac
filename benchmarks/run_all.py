"""Run every ``benchmarks/bench_*.py`` and print each one's JSON line.

Each benchmark is a script that prints one JSON object on stdout. This runner executes them
one after the other with the current interpreter (so ``make bench`` uses the project venv),
prints their JSON lines, and reports failures on stderr.

Usage: ``python benchmarks/run_all.py [--only NAME ...] [--out FILE.jsonl]``
Exit code: 0 if every benchmark ran and printed valid JSON, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent


def find_benchmarks(only: list[str] | None) -> list[Path]:
    """Sorted ``bench_*.py`` scripts next to this file, optionally filtered by name."""
    scripts = sorted(HERE.glob("bench_*.py"))
    if only:
        scripts = [s for s in scripts if any(name in s.stem for name in only)]
    return scripts


def run_one(script: Path) -> dict | None:
    """Run one benchmark; return its JSON object or None (reason printed to stderr)."""
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          cwd=HERE.parent)
    if proc.returncode != 0:
        tail = proc.stderr.strip().splitlines()[-1:] or ["(no stderr)"]
        print(f"{script.name}: exit {proc.returncode}: {tail[0]}", file=sys.stderr)
        return None
    lines = [line for line in proc.stdout.splitlines() if line.strip().startswith("{")]
    if not lines:
        print(f"{script.name}: printed no JSON object", file=sys.stderr)
        return None
    try:
        result = json.loads(lines[-1])
    except json.JSONDecodeError as err:
        print(f"{script.name}: invalid JSON: {err}", file=sys.stderr)
        return None
    result.setdefault("script", script.name)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", help="run only scripts whose name contains these")
    parser.add_argument("--out", type=Path, help="also write the JSON lines to this file")
    args = parser.parse_args(argv)

    results, failed = [], 0
    for script in find_benchmarks(args.only):
        result = run_one(script)
        if result is None:
            failed += 1
            continue
        line = json.dumps(result)
        print(line, flush=True)
        results.append(line)
    if args.out is not None:
        # atomic: a killed run never leaves a half-written file
        args.out.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=args.out.parent, prefix=args.out.name + ".tmp-")
        with os.fdopen(fd, "w") as handle:
            handle.write("\n".join(results) + ("\n" if results else ""))
        os.replace(tmp, args.out)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
