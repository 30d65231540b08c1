"""Fuzz one harness with atheris: python fuzz/run.py NAME [--runs 1000000] [--max-len 65536]

A crash is any exception other than the harness's documented errors, one input taking over 1 s, or the process
passing 500 MB; atheris writes the input to crash-*/timeout-*/oom-* in the current folder. Copy such a file to
tests/data/fuzz/NAME/ so tests/test_fuzz_regressions.py replays it from then on.
"""

from __future__ import annotations

import argparse
import dis
import importlib
import operator
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import atheris  # noqa: E402
from atheris.version_dependent import CMP_OP_SHIFT_AMOUNT  # noqa: E402

# The parsers a harness hands the bytes to, instrumented too so coverage guides the fuzzer through their grammar.
LIBRARIES = {"settings": ("tomllib",), "sigma": ("yaml", "sigma")}
TARGETS = ("trailstream.analytics.queries", "trailstream.analytics.sqlguard", "trailstream.config",
           "trailstream.ingest.messages", "trailstream.ingest.records", "trailstream.analytics.integrity",
           "trailstream.cache.integrity", "trailstream.analytics.sigma.loading", "trailstream.notify.alerts")

_TRACED = (str, bytes, int, float, type(None))
_COMPARISONS = {"<": operator.lt, "<=": operator.le, "==": operator.eq, "!=": operator.ne, ">": operator.gt,
                ">=": operator.ge}
_native = {}


def _trace_cmp(left, right, op, counter, is_const):
    """atheris 3.0.0's comparison hook keeps a reference to every result that is not a bool (a polars expression
    such as `pl.col("state") == "verified"`): ~1.5 KB per input in the digest harness. Only plain values go to it."""
    if isinstance(left, _TRACED) and isinstance(right, _TRACED):
        return _native["trace_cmp"](left, right, op, counter, is_const)
    return _COMPARISONS[dis.cmp_op[op >> CMP_OP_SHIFT_AMOUNT]](left, right)


def _with_comparison_hook(harness):
    """The fuzz target: atheris.Fuzz() binds libFuzzer's own hook when it starts, so ours goes in at the first input
    (instrumented code looks the hook up on the atheris module at each comparison)."""
    def test_one_input(data: bytes) -> None:
        if atheris._trace_cmp is not _trace_cmp:
            _native["trace_cmp"], atheris._trace_cmp = atheris._trace_cmp, _trace_cmp
        run_one(harness, data)
    return test_one_input


with atheris.instrument_imports(include=["trailstream", *LIBRARIES.get(sys.argv[1] if len(sys.argv) > 1 else "", ())]):
    for module in TARGETS:
        importlib.import_module(module)

from fuzz.harnesses import harnesses, regression_inputs, run_one  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", choices=sorted(harnesses()))
    parser.add_argument("--runs", type=int, default=1_000_000)
    parser.add_argument("--max-len", type=int, default=65536)
    args, rest = parser.parse_known_args()
    harness = harnesses()[args.name]
    seeds = Path(tempfile.mkdtemp(prefix=f"fuzz-{args.name}-"))
    for number, data in enumerate(harness.seeds() + [data for _, data in regression_inputs(args.name)]):
        run_one(harness, data)  # also builds what the harness opens once (a demo cache) before the 1 s limit applies
        (seeds / f"seed-{number}").write_bytes(data[: args.max_len])
    atheris.Setup([sys.argv[0], f"-runs={args.runs}", "-timeout=1", "-rss_limit_mb=500",
                   f"-max_len={args.max_len}", *rest, str(seeds)], _with_comparison_hook(harness))
    atheris.Fuzz()


if __name__ == "__main__":
    main()
