"""The demo (``python -m tools.demo``, run by ``scripts/demo.sh``) on the OpenClaw state kept in ``data/``
(``state``: what it holds, read from the state itself; ``rebuild``: ``python -m tools.demo.rebuild`` writes
it again with OpenClaw), and ``sample_state``, the generator of JSONL-era state dirs that many tests use."""
