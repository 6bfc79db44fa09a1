"""bench/compare.py on tiny hand-made pytest-benchmark JSON files: ratios (plain / ours) compared
between two runs, a fall beyond the tolerance fails. Nothing is timed here."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

import compare  # noqa: E402


def _bench(case: str, impl: str, role: str, best_s: float, scale: float = 1.0, tier: str = "quick") -> dict:
    return {
        "group": f"{case} group",
        "name": f"test_cpu[{case}-{impl}]",
        "stats": {"min": best_s, "mean": best_s * 1.1},
        "extra_info": {"case": case, "impl": impl, "role": role, "tier": tier, "device": "cpu",
                       "full_work_scale": scale},
    }


def _run(ours_s: float, plain_s: float, other_plain_s: float = 2.0, tier: str = "quick") -> dict:
    return {"benchmarks": [
        _bench("sens", "mpts_fast", "ours", ours_s, tier=tier),
        _bench("sens", "plain_einsum", "plain", plain_s, tier=tier),
        _bench("sens", "torch_mm", "reference", 0.1, tier=tier),  # a yardstick: never a ratio
        _bench("kc", "mpts_fast", "ours", 1.0, tier=tier),
        _bench("kc", "plain_dense", "plain", other_plain_s, scale=10.0, tier=tier),
    ]}


def _statuses(rows):
    return {r.key[0] + "/" + r.key[3]: r.status for r in rows}


def test_ratios_use_best_time_and_full_work_scale():
    r = compare.ratios(_run(0.5, 1.0))
    assert set(r) == {("sens", "cpu", "quick", "plain_einsum"), ("kc", "cpu", "quick", "plain_dense")}
    assert r[("sens", "cpu", "quick", "plain_einsum")].value == pytest.approx(2.0)
    assert r[("kc", "cpu", "quick", "plain_dense")].value == pytest.approx(20.0)


def test_same_ratio_at_slower_absolute_times_passes():
    # a machine twice as busy: both slower, ratio unchanged
    rows = compare.compare(_run(0.5, 1.0), _run(1.0, 2.0, other_plain_s=2.0 * 1.0), tol=0.25)
    assert not compare.failed(rows)
    assert set(_statuses(rows).values()) == {"ok"}


def test_fall_beyond_tolerance_fails_and_within_passes():
    base = _run(0.5, 1.0)  # ratio 2.0
    assert compare.failed(compare.compare(base, _run(0.5, 0.7), tol=0.25))  # 1.4: -30%
    assert not compare.failed(compare.compare(base, _run(0.5, 0.8), tol=0.25))  # 1.6: -20%
    assert not compare.failed(compare.compare(base, _run(0.5, 0.7), tol=0.35))  # settable tolerance
    rows = compare.compare(base, _run(0.5, 0.7), tol=0.25)
    assert _statuses(rows) == {"kc/plain_dense": "ok", "sens/plain_einsum": "REGRESSED"}
    assert "REGRESSED" in compare.table(rows, 0.25)


def test_new_and_missing_cases_do_not_fail():
    base = {"benchmarks": _run(0.5, 1.0)["benchmarks"][:3]}
    rows = compare.compare(base, {"benchmarks": _run(0.5, 1.0)["benchmarks"][3:]}, tol=0.25)
    assert _statuses(rows) == {"kc/plain_dense": "new", "sens/plain_einsum": "missing"}
    assert not compare.failed(rows)


def test_cli_picks_last_saved_run_of_same_tier(tmp_path, capsys):
    storage = tmp_path / "store" / "Linux-CPython-3.12-64bit"
    storage.mkdir(parents=True)
    (storage / "0001_old.json").write_text(json.dumps(_run(0.5, 0.6)))  # ratio 1.2
    (storage / "0002_quick.json").write_text(json.dumps(_run(0.5, 1.0)))  # ratio 2.0: the baseline
    (storage / "0003_full.json").write_text(json.dumps(_run(0.5, 5.0, tier="full")))  # other tier: skipped
    current = tmp_path / "current.json"
    current.write_text(json.dumps(_run(0.5, 0.7)))  # 1.4: -30% against 0002
    store = ["--current", str(current), "--storage", str(tmp_path / "store")]
    assert compare.main(store + ["--baselines", "1"]) == 1
    assert "0002_quick.json" in capsys.readouterr().out
    assert compare.main(store + ["--baselines", "1", "--tol", "0.4"]) == 0
    assert compare.main(["--current", str(current), "--baseline", str(storage / "0001_old.json")]) == 0
    # default: the lower middle of the last quick runs (2.0 and 1.2): 1.4 is no fall from 1.2
    assert compare.main(store) == 0
    assert "median of 2 saved runs" in capsys.readouterr().out


def test_median_of_saved_runs_ignores_one_noisy_baseline():
    noisy, typical = _run(0.5, 1.6), _run(0.5, 1.0)  # ratios 3.2 (a slow plain round) and 2.0
    current = _run(0.5, 0.95)  # 1.9
    assert compare.failed(compare.compare(noisy, current, tol=0.25))  # one run: -41%
    assert not compare.failed(compare.compare([noisy, typical, typical], current, tol=0.25))
    assert not compare.failed(compare.compare([noisy, typical], current, tol=0.25))  # even count: lower middle
    assert compare.failed(compare.compare([noisy, typical, typical], _run(0.5, 0.7), tol=0.25))  # 1.4: a real fall
    rows = compare.compare([typical, noisy, typical], current, tol=0.25)
    assert {r.before.value for r in rows if r.key[0] == "sens"} == {2.0}


def test_cli_rejects_non_positive_baselines(tmp_path):
    current = tmp_path / "current.json"
    current.write_text(json.dumps(_run(0.5, 1.0)))
    with pytest.raises(SystemExit):
        compare.main(["--current", str(current), "--storage", str(tmp_path), "--baselines", "0"])


def test_cli_without_baseline_says_so(tmp_path):
    current = tmp_path / "current.json"
    current.write_text(json.dumps(_run(0.5, 1.0)))
    assert compare.main(["--current", str(current), "--storage", str(tmp_path / "empty")]) == 2


def test_recheck_keeps_only_regressions_seen_twice():
    base = _run(0.5, 1.0)  # sens 2.0, kc 20
    first = compare.compare(base, _run(0.5, 0.7, other_plain_s=1.0), tol=0.25)  # both regress
    assert compare.regressed_cases(first) == ["kc", "sens"]
    again = compare.compare(base, _run(0.5, 0.95, other_plain_s=1.0), tol=0.25)  # sens recovers, kc does not
    final = compare.confirm(first, again)
    assert _statuses(final) == {"kc/plain_dense": "REGRESSED", "sens/plain_einsum": "ok on re-run"}
    assert compare.failed(final)
