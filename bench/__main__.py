"""Run the benchmarks: ``python -m bench [names...]`` runs every ``bench/bench_*.py`` module's ``main()``
(or only the named ones, with or without the ``bench_`` prefix) in turn; ``--list`` lists them.

Each benchmark prints its own side-by-side table. Arguments after ``--`` are passed to every named
benchmark's ``main(argv)`` (for those that take them).
"""

from __future__ import annotations

import importlib
import inspect
import sys
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent


def available() -> list[str]:
    return sorted(p.stem.removeprefix("bench_") for p in HERE.glob("bench_*.py"))


def _doc(name: str) -> str:
    text = (HERE / f"bench_{name}.py").read_text(encoding="utf-8")
    for quote in ('"""', "'''"):
        if text.lstrip().startswith(quote):
            body = text.lstrip()[3:]
            return body.split(quote, 1)[0].strip().splitlines()[0] if body.strip() else ""
    return ""


def run(name: str, argv: list[str]) -> bool:
    module = importlib.import_module(f"bench.bench_{name}")
    main = getattr(module, "main", None)
    if main is None:
        print(f"bench_{name}: no main()", file=sys.stderr)
        return False
    saved = sys.argv
    sys.argv = [f"bench_{name}", *argv]
    try:
        if inspect.signature(main).parameters:
            main(argv)
        else:
            main()
    except SystemExit as exc:
        return exc.code in (0, None)
    finally:
        sys.argv = saved
    return True


def main(args: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if args is None else args)
    extra: list[str] = []
    if "--" in args:
        i = args.index("--")
        args, extra = args[:i], args[i + 1 :]
    names = available()
    if "--list" in args or "-l" in args:
        for name in names:
            print(f"{name:<16} {_doc(name)}")
        return 0
    if "-h" in args or "--help" in args:
        print(__doc__)
        return 0
    wanted = [a.removeprefix("bench_").removesuffix(".py") for a in args]
    unknown = [w for w in wanted if w not in names]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; available: {', '.join(names)}", file=sys.stderr)
        return 2
    failed = []
    for name in wanted or names:
        print(f"\n=== bench_{name} ===", flush=True)
        started = time.perf_counter()
        try:
            ok = run(name, extra)
        except Exception:
            traceback.print_exc()
            ok = False
        print(f"--- bench_{name}: {'done' if ok else 'FAILED'} in {time.perf_counter() - started:.1f} s", flush=True)
        if not ok:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
