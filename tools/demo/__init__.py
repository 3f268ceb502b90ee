"""The demo (``python -m tools.demo``, run by ``scripts/demo.sh``) and ``sample_state``, the generator of
JSONL-era state dirs that the demo and many tests use."""
