"""The tuning store: where studies live (``<results>/_tuning``: the SQLite database by default, the trial locks and the
tuned-parameter files; or ``--storage URL``: an RDB database, or a journal file that jobs on several machines share
over a network file system), opening it, and what any of its faults looks like.

Every fault of the store is one line of bad input (exit status 2) naming the store and what to do, never a
traceback, whenever it happens: while the database is opened, on its first write (a read-only or foreign database
opens fine and fails there), or in the middle of a study (a full disk). :func:`prepare_store` writes to every part
of the store once before the first trial trains, so a store that cannot be written fails before anything trains;
:func:`store_faults` translates a fault that happens later. A password in the URL never appears in a message
(:mod:`pmrl_bench.redact`).
"""

from __future__ import annotations

import errno
import json
import warnings
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pmrl_bench.errors import UsageError
from pmrl_bench.redact import mask_secrets, mask_url
from pmrl_bench.results.locks import lock_in
from pmrl_bench.results.store import TUNING_DIR

DATABASE = "studies.db"
JOURNAL = "journal://"  # --storage journal:///shared/studies.log: Optuna's journal file storage
LOCKS = ".locks"
HEARTBEAT_INTERVAL = 30  # seconds between a running trial's heartbeats
GRACE_PERIOD = 180  # seconds without a heartbeat before another process fails and retries a trial

# What a fault's root cause says, and what the one line then tells the user to do. The first match wins.
_READ_ONLY = ("readonly", "read-only", "read only", "permission denied", "access denied", "unable to open")
_FULL = ("disk is full", "no space left", "disk quota", "file too large", "disk i/o error")
_FOREIGN = ("not a database", "no such table", "no such column", "has no column", "alembic", "no longer compatible",
            "table schema", "malformed", "constraint failed")


class TuningStoreError(UsageError):
    """The tuning store cannot be used (read-only, full, not a directory, made by another program): one line."""


def default_url(root: Path) -> str:
    return f"sqlite:///{(root / TUNING_DIR / DATABASE).resolve()}"


def storage_url(storage: str | None, root: Path) -> str:
    """``--storage URL`` as given, else the SQLite database under ``<root>/_tuning``. A journal file
    (``journal://PATH``, or a path ending in ``.log``) becomes ``journal://`` and its absolute path, so that every
    process and every job of a launcher names the same file whatever its working directory."""
    if storage is None:
        return default_url(root)
    if storage.startswith(JOURNAL) or ("://" not in storage and storage.endswith(".log")):
        path = storage.removeprefix(JOURNAL)
        if not path.strip():
            raise TuningStoreError(f"--storage {storage!r} names no file; give a journal file such as "
                                   "journal:///shared/studies.log (or a path ending in .log)")
        return JOURNAL + str(Path(path).expanduser().resolve())
    return storage


def journal_path(url: str) -> Path | None:
    """The log file of a journal storage URL (``journal:///shared/studies.log``), else None (an RDB URL)."""
    return Path(url.removeprefix(JOURNAL)) if url.startswith(JOURNAL) else None


def native_heartbeat(storage: Any) -> bool:
    """Whether Optuna records heartbeats in ``storage`` (its RDB storages do; a journal file does not, so the
    trials there carry their own in a user attribute)."""
    return callable(getattr(storage, "record_heartbeat", None))  # Optuna's heartbeat base class is private


def describe_store(url: str, root: Path) -> str:
    """How a message names the store: the database file by default, else the ``--storage`` URL, password masked."""
    if url == default_url(root):
        return f"tuning store {str(root / TUNING_DIR / DATABASE)!r}"
    return f"--storage {mask_url(url)!r}"


def open_storage(url: str, root: Path | None = None) -> Any:
    """Optuna's storage for ``url``: a journal file, or an RDB storage (heartbeats on, so dead trials are retried);
    any failure is one line.
    ``root``: the results directory, to name the default database by its path."""
    import optuna

    journal = journal_path(url)
    if journal is not None:
        return _open_journal(journal, url)
    kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):  # concurrent processes wait for SQLite's lock instead of failing at once
        kwargs["engine_kwargs"] = {"connect_args": {"timeout": 120}}
    try:
        with warnings.catch_warnings():  # heartbeats are "experimental" in Optuna; they are what resumes dead trials
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.storages.RDBStorage(
                url, heartbeat_interval=HEARTBEAT_INTERVAL, grace_period=GRACE_PERIOD,
                heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(), **kwargs,
            )
    except Exception as exc:  # noqa: BLE001 - SQLAlchemy raises many types for a bad URL or an unreachable server
        cause = _cause(exc)
        if _matches(cause, _READ_ONLY + _FULL + _FOREIGN):
            raise _fault(exc, url, root) from None
        top = (str(exc).strip().splitlines() or [cause])[0]
        said = top if cause in top else f"{top}: {cause}"
        raise TuningStoreError(f"--storage {mask_url(url)!r}: Optuna cannot open it ({mask_secrets(said, url)}); "
                               "give an RDB URL such as sqlite:///path/studies.db or postgresql://user@host/db, or a "
                               "journal file such as journal:///shared/studies.log") from None


def _open_journal(path: Path, url: str) -> Any:
    """Optuna's journal storage on the file ``path``: one JSON line per operation, appended under a lock made of
    symbolic links, which works on network file systems where SQLite's locks do not (one study file for the jobs of
    a cluster, no database server)."""
    import optuna
    from optuna.storages.journal import JournalFileBackend

    where = f"--storage {url!r}"
    if path.is_dir():
        raise TuningStoreError(f"{where}: {str(path)!r} is a directory; give a file in it, e.g. "
                               f"{str(path / 'studies.log')!r}")
    if not path.parent.is_dir():
        raise TuningStoreError(f"{where}: the directory {str(path.parent)!r} does not exist; create it, or give a "
                               "journal file in an existing directory")
    try:
        _check_journal(path)
        return optuna.storages.JournalStorage(JournalFileBackend(str(path)))
    except OSError as exc:
        raise _fault(exc, url, None) from None
    except (ValueError, KeyError, TypeError) as exc:  # a line that is not JSON, or JSON that is not an operation
        raise TuningStoreError(f"{where}: {str(path)!r} is not an Optuna journal ({_cause(exc)}); move it away, or "
                               "pass --storage with another file") from None


def _check_journal(path: Path) -> None:
    """Its first line, if any, must be a journal operation. Optuna reads a bad line only once another follows it
    (the last line may be half written), so a foreign file would fail at the first write, not here."""
    if not path.exists():
        return
    with path.open("rb") as file:
        first = file.readline(1 << 20)
    if first.strip():
        operation = json.loads(first)
        if not isinstance(operation, dict) or "op_code" not in operation:
            raise ValueError("its first line is JSON but not a journal operation")


def prepare_store(url: str, root: Path, study_names: Iterable[str]) -> None:
    """Create and write every part of the store once: the ``_tuning`` directory and its lock directory, the database
    and one row per study (Optuna's ``create_study``, a write even when the study exists). Call it before the first
    trial, inside :func:`store_faults`."""
    import optuna

    base = root / TUNING_DIR
    base.mkdir(parents=True, exist_ok=True)
    lock_in(base / LOCKS, "write-test")  # the directory and its .gitignore
    storage = open_storage(url, root)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    for name in study_names:
        optuna.create_study(storage=storage, study_name=name, direction="maximize", load_if_exists=True)


@contextmanager
def store_faults(url: str, root: Path) -> Iterator[None]:
    """Within the block, a fault of the store (SQLAlchemy's or Optuna's storage errors, a file-system error under
    ``_tuning``) becomes one :class:`TuningStoreError` line naming the store and what to do."""
    import optuna
    from sqlalchemy.exc import SQLAlchemyError

    try:
        yield
    except (SQLAlchemyError, optuna.exceptions.StorageInternalError) as exc:
        raise _fault(exc, url, root) from None
    except OSError as exc:  # the _tuning directory, its locks or a tuned-parameter file
        raise _fault(exc, url, root) from None


def _fault(exc: BaseException, url: str, root: Path | None) -> TuningStoreError:
    where = describe_store(url, root) if root is not None else f"--storage {mask_url(url)!r}"
    if isinstance(exc, OSError) and exc.filename is not None:
        return TuningStoreError(_os_fault(exc, where))
    cause = mask_secrets(_cause(exc), url)
    if _matches(cause, _READ_ONLY):
        advice = ("it cannot be written (read-only, or its directory is); make both writable, or tune into another "
                  "--results directory or --storage")
    elif _matches(cause, _FULL):
        advice = ("its disk is full (or failing); free space and run the same command again (completed trials are "
                  "kept)")
    elif _matches(cause, _FOREIGN):
        advice = ("it is not a study database of this pmrl-bench (made by another program or another Optuna "
                  "version); move it away, or pass --storage with another database")
    else:
        advice = "check that it is reachable and writable, or pass --storage with another database"
    return TuningStoreError(f"{where}: {cause}; {advice}")


def _os_fault(exc: OSError, where: str) -> str:
    path = str(exc.filename)
    reason = exc.strerror or str(exc)
    if exc.errno in (errno.EEXIST, errno.ENOTDIR):
        return (f"{where}: {path!r} is in the way ({reason}): a file where pmrl-bench keeps a directory of "
                "studies; move it away, or tune into another --results directory")
    if exc.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC), errno.EFBIG):
        return f"{where}: cannot write {path!r} ({reason}); free space and run the same command again"
    return (f"{where}: cannot write {path!r} ({reason}); make it writable, or tune into another --results "
            "directory")


def _cause(exc: BaseException) -> str:
    """The first line of what went wrong at the bottom: the database driver's message, not Optuna's wrapper."""
    seen: set[int] = set()
    current: BaseException = exc
    while id(current) not in seen:
        seen.add(id(current))
        inner = getattr(current, "orig", None) or current.__cause__
        if not isinstance(inner, BaseException):
            break
        current = inner
    text = str(current).strip()
    return (text.splitlines() or [type(current).__name__])[0]


def _matches(text: str, needles: tuple[str, ...]) -> bool:
    lowered = text.lower()
    return any(needle in lowered for needle in needles)
