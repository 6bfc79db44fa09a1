"""The package's libgomp default (mpts_fast/__init__.py): a short spin before idle OpenMP workers
sleep, set only when torch is not loaded yet and the user chose no wait policy."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest


def _spincount_after(code: str, **env: str) -> str:
    base = {k: v for k, v in os.environ.items() if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")}
    out = subprocess.run([sys.executable, "-c", code + "; import os; print(os.environ.get('GOMP_SPINCOUNT', 'unset'))"],
                         env={**base, **env}, capture_output=True, text=True, check=True)
    return out.stdout.strip().splitlines()[-1]


@pytest.mark.parametrize(
    "code,env,want",
    [
        ("import mpts_fast", {}, "3000"),
        ("import mpts_fast", {"GOMP_SPINCOUNT": "50"}, "50"),  # the user's value wins
        ("import mpts_fast", {"OMP_WAIT_POLICY": "ACTIVE"}, "unset"),  # a chosen policy is left alone
        ("import torch, mpts_fast", {}, "unset"),  # too late: libgomp has read its settings
    ],
)
def test_spincount_default(code, env, want):
    assert _spincount_after(code, **env) == want
