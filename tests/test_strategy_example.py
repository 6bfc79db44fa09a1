"""docs/baselines.md's "Adding a strategy" example, run as written: its code block becomes a module in a folder on
the strategies package's path, `discover()` registers it, and `mpts-fast run` (built after it, in a fresh
interpreter) runs an AL round with it, its declared --temperature included."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

DOC = Path(__file__).resolve().parent.parent / "docs" / "baselines.md"

_RUN = """
import json, sys
import mpts_fast.strategies as strategies
strategies.__path__.append(sys.argv[1])
found = strategies.discover()
from click.testing import CliRunner
from mpts_fast.cli.main import main
fast = ["--dataset", "wine", "--rounds", "2", "--initial", "12", "--budget", "6", "--epochs", "1", "--device", "cpu",
        "--quiet"]
good = CliRunner().invoke(main, ["run", "-s", "tempered_entropy", "--temperature", "3", *fast, "--out", sys.argv[2]])
bad = CliRunner().invoke(main, ["run", "-s", "tempered_entropy", "--temperature", "0", *fast, "--out", sys.argv[3]])
listed = CliRunner().invoke(main, ["strategies"])
print(json.dumps({"found": found, "good": [good.exit_code, good.output], "bad": [bad.exit_code, bad.output],
                  "listed": listed.output}))
"""


def example_code() -> str:
    section = DOC.read_text().split("## Adding a strategy", 1)[1]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert blocks, "docs/baselines.md: 'Adding a strategy' has no python block"
    return blocks[0]


def test_the_documented_example_is_one_short_file():
    code = example_code()
    assert len([line for line in code.splitlines() if line.strip()]) <= 20
    assert "@register" in code and "class " in code


def test_the_documented_example_runs_a_round_through_the_cli(tmp_path):
    plugin = tmp_path / "plugin"
    plugin.mkdir()
    (plugin / "tempered_entropy_example.py").write_text(example_code())
    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-c", _RUN, str(plugin), str(out), str(tmp_path / "bad")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert "tempered_entropy_example" in got["found"]
    assert got["good"][0] == 0, got["good"][1]
    saved = json.loads((out / "results.json").read_text())
    assert saved["strategy"] == "tempered_entropy" and saved["config"]["strategy_options"] == {"temperature": 3.0}
    rounds = saved["runs"][0]["rounds"]
    assert len(rounds) == 2 and len(rounds[0]["selected"]) == 6
    code, output = got["bad"]
    assert code == 2 and "--temperature" in output and "positive number" in output, output
    assert "tempered_entropy:" in got["listed"] and "--temperature (default 2.0) sets temperature" in got["listed"]
