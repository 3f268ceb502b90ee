"""``python -m tools.bench <section>``: the benchmarks (see :mod:`tools.bench.cli`)."""

from tools.bench.cli import main

raise SystemExit(main())
