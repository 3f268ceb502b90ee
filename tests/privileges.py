"""File modes in tests that run as root: root ignores them (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH), so a
test of a permission error runs its subject in a child process without those capabilities, through
``setpriv``. As another user nothing is needed. Where neither works, the test fails with the reason: a
permission test that cannot deny anything must not pass or skip."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

WITHOUT_DAC_OVERRIDE = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search", "--"]


def modes_apply_prefix() -> list[str]:
    """The command prefix under which file modes apply to a child process (empty unless root)."""
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.fail("running as root without setpriv (util-linux): file modes cannot be made to apply")
    done = subprocess.run([*WITHOUT_DAC_OVERRIDE, "true"], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.fail(f"running as root and setpriv cannot drop CAP_DAC_OVERRIDE here: {done.stderr.strip()}")
    return WITHOUT_DAC_OVERRIDE
