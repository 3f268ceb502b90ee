"""What the demo, the tests and the benchmarks run beside the package; none of it ships.

- ``tools.openclaw``: drives OpenClaw itself (installs a pinned release, builds state dirs through its
  gateway, CLI and doctor).
- ``tools.stacks``: runs Airflow (the embedded default, the Celery stack, a throwaway sandbox, other
  releases).
- ``tools.bench``: the benchmarks (``python -m tools.bench <section>``).
- ``tools.demo``: the demo (``python -m tools.demo``) on OpenClaw-written state kept in ``tools/demo/data``
  (``python -m tools.demo.rebuild`` rebuilds it), and the JSONL-era sample-state generator.
- ``tools.standins``: the Nexus stand-in and the model provider stand-in.
"""
