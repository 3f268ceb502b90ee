"""Keep the Nexus API key out of every text we log, raise or push. Airflow-free.

``requests`` writes the full URL, ``?code=<key>`` included, into its exception texts, and Airflow's
secret masker does not reach ``airflow dags test`` output or XCom values: scrub before any text leaves.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_CODE_PARAM_RE = re.compile(r"([?&;]code=)[^&#\s'\")]*", re.IGNORECASE)
MASK = "***"


def scrub(text: str, secrets: Iterable[str | None] = ()) -> str:
    """``text`` with every ``code=`` query value and every given secret replaced by ``***``."""
    text = _CODE_PARAM_RE.sub(rf"\g<1>{MASK}", text)
    for secret in secrets:
        if secret:
            text = text.replace(secret, MASK)
    return text


def excerpt(text: str, limit: int = 300) -> str:
    """One line of at most ``limit`` characters, for error messages."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
