"""results.json: atomic writes (a crash or Ctrl-C leaves the previous complete file), loading, AUBC, summaries over
seeds (sample std, ddof = 1), provenance of a run and the one-row-per-seed-and-round CSV export."""
from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

import numpy as np

RESULTS_FILE = "results.json"
CSV_FILE = "results.csv"
STD_NOTE = "sample standard deviation over seeds (ddof = 1); null with a single seed"


def _umask() -> int:
    """The process umask: from /proc on Linux (no change to process state), else read by setting it and setting it back
    at once (os.umask cannot only read it)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _primary() -> bool:
    """Rank 0 of a torchrun job, or a single process."""
    from mpts_fast.distributed.group import is_primary

    return is_primary()


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write to a temporary file in the same directory, fsync, then rename over `path` (atomic on POSIX).

    The file gets the mode a plain open() would give (0o666 minus the umask, 0644 typically), not mkstemp's 0600, so
    collaborators on a shared filesystem can read results."""
    if not _primary():
        return  # under torchrun only rank 0 writes; the other ranks hold the same results
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "w", newline="") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json_atomic(path: str | Path, data: Any) -> None:
    """`data` as indented JSON, written atomically (write_text_atomic); unserialisable data leaves `path` as it was."""
    write_text_atomic(path, json.dumps(data, indent=1))


class DamagedResultsError(ValueError):
    """A results file that cannot be used: not valid JSON (truncated, or edited by hand), or valid JSON that lacks what
    a results file holds. `path`: the file; `problem`: what is wrong with it. The message says what to do in the Python
    API's words; the command line words its own remedy from `path` and `problem`."""

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path, self.problem = Path(path), problem
        super().__init__(f"{path} is damaged: {problem}. Start again over it with overwrite=True, write to another "
                         f"directory, or restore the file from a copy")


def load_json(path: str | Path) -> Any:
    """The JSON in `path`; a DamagedResultsError naming the file, where it breaks and what to do when it is not valid
    JSON (a truncated or hand-edited file), instead of the parser's bare message."""
    with open(path, encoding="utf-8") as f:
        try:
            return json.load(f)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise DamagedResultsError(path, f"it is not valid JSON ({e}), so it was cut short or edited by hand") \
                from None


# What every results.json written by `run` / run_experiment holds (the config keys are those every version wrote).
_CONFIG_KEYS = ("dataset", "strategy", "rounds", "initial", "budget", "epochs", "repeats", "seed", "lr", "batch_size",
                "model", "strategy_options")
_RUN_KEYS = {"seed": int, "initial": list, "rounds": list}
_ROUND_KEYS = ("round", "n_labeled", "test_accuracy", "selected")


def check_results(results: Any, path: str | Path) -> dict:
    """`results` (the JSON of a results.json) if it holds what the loop, --resume, the summaries and the CSV export
    read; else a DamagedResultsError naming the first thing missing. Runs and rounds are checked one by one (a file
    of thousands of rounds takes milliseconds)."""
    def damaged(what: str) -> DamagedResultsError:
        return DamagedResultsError(path, f"it is valid JSON but not a complete results file ({what}), so it was "
                                         f"edited by hand or written by another program")

    if not isinstance(results, dict):
        raise damaged(f"expected an object at the top, found {type(results).__name__}")
    for key, kind in (("dataset", str), ("strategy", str), ("config", dict), ("runs", list)):
        if not isinstance(results.get(key), kind):
            raise damaged(f"{key!r} is missing" if key not in results else f"{key!r} is not a {kind.__name__}")
    missing = [k for k in _CONFIG_KEYS if k not in results["config"]]
    if missing:
        raise damaged(f"'config' lacks {', '.join(map(repr, missing))}")
    for i, run in enumerate(results["runs"]):
        if not isinstance(run, dict):
            raise damaged(f"runs[{i}] is not an object")
        for key, kind in _RUN_KEYS.items():
            if not isinstance(run.get(key), kind) or isinstance(run.get(key), bool):
                expected = "an integer" if kind is int else "a list"
                raise damaged(f"runs[{i}] lacks {key!r}" if key not in run else f"runs[{i}][{key!r}] is not {expected}")
        for r, rd in enumerate(run["rounds"]):
            lacks = [k for k in _ROUND_KEYS if k not in rd] if isinstance(rd, dict) else ["everything"]
            if lacks:
                raise damaged(f"runs[{i}]['rounds'][{r}] lacks {', '.join(map(repr, lacks))}")
    return results


def load_results(path: str | Path) -> dict:
    """A results.json, checked (check_results): a DamagedResultsError naming the file and what is wrong, never a
    KeyError later."""
    return check_results(load_json(path), path)


class OutputLockedError(RuntimeError):
    """Another process holds the output directory's lock (it is writing results there now). `path`: the directory;
    `holder`: the pid and start time the holder wrote into the lock file."""

    def __init__(self, path: Path, holder: str) -> None:
        self.path, self.holder = path, holder
        super().__init__(f"{path} is in use by another mpts-fast process ({holder}); wait for it to finish, or write "
                         f"to another directory")


class UnwritableOutputError(OSError):
    """The output directory cannot be created or written (no permission, a read-only file system, a regular file where
    a directory belongs). `path`: the directory; the message names the path that failed and why."""

    def __init__(self, path: Path, error: OSError) -> None:
        self.path, self.reason = path, write_error_reason(error, path)
        super().__init__(error.errno, f"cannot write to the output directory {path}: {self.reason}")

    def __str__(self) -> str:
        return self.strerror


LOCK_FILE = ".lock"


def write_error_reason(error: OSError, target: str | Path) -> str:
    """Why writing `target` (a file, or a directory to create) failed, naming the path at fault: a regular file
    where a directory belongs ("x is a file, not a directory", which the OS words as "File exists" or "Not a
    directory"), else the OS's reason and the path it names (not this module's temporary file)."""
    target = Path(target)
    for parent in target.parents:
        if parent.exists() and not parent.is_dir():
            return f"{parent} is a file, not a directory"
    reason = error.strerror or str(error)
    culprit = error.filename
    if culprit is not None and Path(culprit) != target and not Path(culprit).name.startswith(target.name + "."):
        reason += f" ({culprit})"
    return reason


@contextlib.contextmanager
def output_lock(out_dir: str | Path) -> Iterator[Path]:
    """Holds `<out_dir>/.lock` (fcntl.flock, exclusive, non-blocking) while the block runs, so two processes given
    the same output directory never interleave their writes: the second raises OutputLockedError naming the holder's
    pid and start time. The kernel drops the lock when its holder exits, even on a crash or kill -9, so a stale lock
    file never blocks a later run. The file stays (removing it would race with a process that has just opened it).
    Without fcntl (Windows) the block runs unlocked. Under torchrun only rank 0 takes it (the writer)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield Path(out_dir) / LOCK_FILE
        return
    if not _primary():
        yield Path(out_dir) / LOCK_FILE
        return
    out_dir = Path(out_dir)
    path = out_dir / LOCK_FILE
    try:  # the first write into out_dir: an unwritable directory is found here, before any training
        out_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666 & ~_umask())
    except OSError as e:
        raise UnwritableOutputError(out_dir, e) from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 512, 0).decode("utf-8", "replace").strip() or "unknown"
            raise OutputLockedError(out_dir, holder) from None
        import datetime

        stamp = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()}, started {stamp}\n".encode(), 0)
        try:
            yield path
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def aubc(n_labeled: list[int] | np.ndarray, accuracy: list[float] | np.ndarray) -> float:
    """Area under the budget curve: trapezoid of accuracy over label counts, divided by the label range (so it lies in
    [0, 1] like accuracy). A single round gives its accuracy."""
    n = np.asarray(n_labeled, dtype=np.float64)
    a = np.asarray(accuracy, dtype=np.float64)
    if n.size == 0:
        raise ValueError("aubc: needs at least one round")
    if n.size == 1 or n[-1] == n[0]:
        return float(a.mean())
    trapezoid = getattr(np, "trapezoid", None) or np.trapz  # numpy < 2.0 (e.g. a GPU machine's system numpy)
    return float(trapezoid(a, n) / (n[-1] - n[0]))


def sample_std(values: np.ndarray, axis: int = 0) -> np.ndarray | None:
    """Sample standard deviation (ddof = 1) along `axis`; None when there is a single value (undefined)."""
    values = np.asarray(values, dtype=np.float64)
    if values.shape[axis] < 2:
        return None
    return values.std(axis=axis, ddof=1)


CURVES = ("task", "selection")


def curve_accuracy(record: dict, curve: str = "task") -> float:
    """A round's test accuracy on one curve. "task": the model that scored the run's curve (`test_accuracy`);
    "selection": the model that selected, its own (`selection_test_accuracy`) where the strategy trained a separate
    one, else the same model."""
    if curve not in CURVES:
        raise ValueError(f"curve: expected one of {', '.join(CURVES)}, got {curve!r}")
    return record.get("selection_test_accuracy", record["test_accuracy"]) if curve == "selection" \
        else record["test_accuracy"]


def summarize_runs(results: dict, curve: str = "task") -> dict:
    """Mean ± sample std over complete runs of one strategy: per-round accuracy and AUBC, and each seed's AUBC (the
    `compare` summary entry), on `curve` (curve_accuracy). accuracy_std / aubc_std are None with a single run."""
    runs = [r for r in results["runs"] if r.get("complete")]
    if not runs:
        raise ValueError(f"results for {results.get('strategy')!r} hold no complete run")
    rounds = min(len(r["rounds"]) for r in runs)
    acc = np.array([[curve_accuracy(rd, curve) for rd in r["rounds"][:rounds]] for r in runs])
    n_labeled = [rd["n_labeled"] for rd in runs[0]["rounds"][:rounds]]
    areas = np.array([aubc(n_labeled, a) for a in acc])
    aubc_std, acc_std = sample_std(areas), sample_std(acc)
    return {
        "aubc_mean": float(areas.mean()), "aubc_std": None if aubc_std is None else float(aubc_std),
        "accuracy_mean": acc.mean(0).tolist(), "accuracy_std": None if acc_std is None else acc_std.tolist(),
        "n_labeled": n_labeled, "repeats": len(runs),
        "seeds": [r["seed"] for r in runs], "aubc_per_seed": areas.tolist(), "curve": curve,
    }


def format_mean_std(mean: float, std: float | None, digits: int = 3) -> str:
    """'0.867 ± 0.012', or '0.867 ± n/a' with a single seed; one format for every table row."""
    return f"{mean:.{digits}f} ± " + ("n/a" if std is None else f"{std:.{digits}f}")


# ---- provenance -------------------------------------------------------------------------------------------------

def _git_commit(directory: Path) -> str | None:
    """The checkout's HEAD (with '-dirty' when tracked files differ) when `directory` is inside a git work tree."""
    import subprocess

    try:
        head = subprocess.run(["git", "-C", str(directory), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=5)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(["git", "-C", str(directory), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10)
        return head.stdout.strip() + ("-dirty" if dirty.returncode == 0 and dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def provenance(device: str) -> dict[str, Any]:
    """What produced a result: versions, kernel backend, threads, device, UTC time and the git commit of a checkout."""
    import datetime
    import platform

    import torch

    import mpts_fast
    from mpts_fast import _native

    try:
        backend_setting = _native.backend_setting()
    except ValueError as e:  # a bad MPTS_FAST_BACKEND fails the first op anyway; record what was set
        backend_setting = f"invalid ({e})"
    built = _native._C is not None
    native_devices = _native.native_devices() if built else []
    kind = str(device).split(":")[0]
    effective = "native" if kind in native_devices and backend_setting in ("auto", "native") else "reference"
    return {
        "timestamp": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "mpts_fast": mpts_fast.__version__,
        "git_commit": _git_commit(Path(mpts_fast.__file__).resolve().parent),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "backend": effective,  # the kernels the ops use on `device`: native (_C) or reference (plain PyTorch)
        "backend_setting": backend_setting, "native_devices": native_devices,
        "torch_threads": torch.get_num_threads(),
        "openmp_threads": _native._C.openmp_threads() if built else None,
        "device": str(device),
        "world_size": _world_size(),  # processes of a torchrun job (1: one process); threads above are per process
    }


def _world_size() -> int:
    from mpts_fast.distributed.group import world_size

    return world_size()


# ---- CSV export -------------------------------------------------------------------------------------------------

_LEADING = ["dataset", "strategy", "seed", "round", "n_labeled"]


def results_rows(results: dict) -> list[dict[str, Any]]:
    """One flat row per seed × finished round: the round's metrics and timings, n_selected instead of the index list."""
    rows = []
    for run in results["runs"]:
        for rd in run["rounds"]:
            row = {"dataset": results["dataset"], "strategy": results["strategy"], "seed": run["seed"]}
            for k, v in rd.items():
                if isinstance(v, dict):  # nested records (trajectory, diversity) become "trajectory.cycles" columns
                    row.update({f"{k}.{sub}": x for sub, x in v.items()})
                elif k != "selected":
                    row[k] = v
            row["n_selected"] = len(rd.get("selected", []))
            rows.append(row)
    return rows


def rows_to_csv(rows: list[dict[str, Any]]) -> str:
    """A header row and one line per row; columns are the union of the rows' keys (empty where a row lacks one, e.g.
    snapshot_accuracy for strategies without snapshots)."""
    columns = list(_LEADING)
    for row in rows:
        columns += [k for k in row if k not in columns]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def write_results_csv(path: str | Path, results: list[dict]) -> Path:
    """Every finished round of every results.json dict in `results` → one CSV (readable by pandas.read_csv)."""
    rows = [row for res in results for row in results_rows(res)]
    write_text_atomic(path, rows_to_csv(rows))
    return Path(path)
