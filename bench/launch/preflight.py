"""Checks of the environment a launch needs (room on disk: bench/runtime/disk.py; runtime options:
bench/train/options.py), run before any job starts or any MLflow run exists.

Each raises one `BenchError` that says what is wrong and how to fix it:

    check_home()                      BENCH_HOME is (or can become) a writable directory
    check_tracking_uri(uri)           a scheme MLflow serves, and a SQLite file that is a database (a hot
                                      journal left by a killed writer is rolled back first, as SQLite does)

Nothing here creates files or directories (a write probe is removed at once), so `--dry-run` stays read-only;
the one exception is the rollback of a hot journal, which only puts the store back as it was before the kill.
"""
from __future__ import annotations

import os
import sqlite3
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

from bench.errors import BenchError, did_you_mean
from bench.runtime.disk import existing_ancestor

# What MLflow's tracking client serves (mlflow 3.x); the file store is refused (maintenance mode in MLflow 3,
# and bench's design keeps every run in a database).
TRACKING_SCHEMES = ("sqlite", "http", "https", "postgresql", "mysql", "mssql", "databricks")
SQLITE_MAGIC = b"SQLite format 3\x00"


def check_home(home: Path | None = None) -> Path:
    """BENCH_HOME must be a writable directory, or a path whose nearest existing parent is one."""
    from bench.config import bench_home

    home = Path(home) if home is not None else bench_home()
    fix = "Set BENCH_HOME to a writable directory (e.g. export BENCH_HOME=$HOME/bench-runs)."
    if home.exists() and not home.is_dir():
        raise BenchError(f"BENCH_HOME {home} is a file, not a directory. {fix}")
    where = existing_ancestor(home)
    if not where.is_dir():
        raise BenchError(f"BENCH_HOME {home} cannot be created: {where} is a file. {fix}")
    try:  # os.access alone is not enough: read-only mounts, and root passes every permission bit
        if not os.access(where, os.W_OK | os.X_OK):
            raise PermissionError(f"no write permission on {where}")
        fd, probe = tempfile.mkstemp(prefix=".bench-write-probe-", dir=where)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise BenchError(f"BENCH_HOME {home} is not writable ({exc.strerror or exc}). {fix}") from None
    return home


def check_tracking_uri(uri: str) -> None:
    """A URI MLflow can track to; for SQLite, a file that is a database (or absent: MLflow creates it)."""
    scheme = urlsplit(uri).scheme.lower().split("+")[0]  # postgresql+psycopg2 -> postgresql
    if scheme in ("", "file") or len(scheme) == 1:  # a bare path or C:\ path is MLflow's file store
        raise BenchError(f"MLFLOW_TRACKING_URI {uri!r} names MLflow's file store, which this MLflow refuses (maintenance "
                         "mode). Use a database: sqlite:///PATH/mlflow.db, or unset MLFLOW_TRACKING_URI to use "
                         "$BENCH_HOME/mlflow.db.")
    if scheme not in TRACKING_SCHEMES:
        raise BenchError(f"MLFLOW_TRACKING_URI {uri!r} has an unknown scheme '{scheme}'.{did_you_mean(scheme, TRACKING_SCHEMES)}"
                         f" Supported: {', '.join(TRACKING_SCHEMES)} (e.g. sqlite:///PATH/mlflow.db or "
                         "http://host:5000); unset it to use $BENCH_HOME/mlflow.db.")
    if scheme == "sqlite":
        check_sqlite_store(uri)


def check_sqlite_store(uri: str) -> None:
    path = uri.split(":///", 1)[1] if ":///" in uri else ""
    if not path or path == ":memory:":
        return
    db = Path(path.split("?", 1)[0])
    aside = f"Move it aside (mv {db} {db}.bad) to start a new store, or point MLFLOW_TRACKING_URI at a good one."
    if db.is_dir():
        raise BenchError(f"MLflow store {db} is a directory, not a SQLite file. {aside}")
    if not db.exists():
        if not db.parent.is_dir():
            raise BenchError(f"MLflow store {db}: its directory {db.parent} does not exist; create it first.")
        return
    header_problem = _header_problem(db)
    if header_problem == NOT_SQLITE:
        raise BenchError(f"MLflow store {db} is not a SQLite database ({header_problem}). {aside}")
    if header_problem and header_problem.startswith("cannot read"):
        raise BenchError(f"MLflow store {db}: {header_problem}. Give this user read and write access to it and its "
                         f"directory (ls -l {db}).")
    recovered = _recover_journal(db)  # a kill in mid-transaction leaves a hot journal: SQLite rolls it back
    problem = (_header_problem(db) if recovered else header_problem) or _schema_problem(db)
    if problem:
        runs = count_runs(db)
        held = "Its runs cannot be counted. " if runs is None else f"It holds {runs} run(s). "
        raise BenchError(f"MLflow store {db} is damaged ({problem}). {held}First recover what it holds: "
                         f"sqlite3 {db} \".recover\" | sqlite3 {db}.recovered && mv {db} {db}.bad && "
                         f"mv {db}.recovered {db}. If that fails: {aside}")


NOT_SQLITE = "no SQLite header: garbage or another kind of file"


def _header_problem(db: Path) -> str | None:
    """NOT_SQLITE, a truncation or an unreadable file, from the 100-byte header alone; None when it looks whole."""
    size = db.stat().st_size
    if size == 0:
        return None  # SQLite treats an empty file as an empty database; MLflow fills it
    try:
        with open(db, "rb") as f:
            header = f.read(100)
    except OSError as exc:
        return f"cannot read it: {exc.strerror or exc}"
    if len(header) < 100 or not header.startswith(SQLITE_MAGIC):
        return NOT_SQLITE
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(header[28:32], "big")
    # The header's page count is valid when its "version valid for" equals the change counter.
    if header[92:96] == header[24:28] and pages and size < pages * page_size:
        return f"truncated: {size} bytes of the {pages * page_size} its header declares"
    return None


def _recover_journal(db: Path) -> bool:
    """Let SQLite roll back a hot journal (or replay a WAL) left by a killed writer: only a read-write
    connection can, so open one under the store lock (bench.tracking.store.ensure_store takes the same lock).
    A journal of a live writer is not hot: SQLite leaves it alone. True when a journal or WAL was there."""
    if not any(Path(f"{db}{suffix}").exists() for suffix in ("-journal", "-wal")):
        return False
    from bench.runtime.locks import exclusive

    with exclusive("mlflow-store"):
        try:
            con = sqlite3.connect(db, timeout=30)
            try:
                con.execute("SELECT count(*) FROM sqlite_master").fetchone()
            finally:
                con.close()
        except sqlite3.Error:
            pass  # judged below, read-only, as any other store
    return True


def _schema_problem(db: Path) -> str | None:
    """Why the schema of `db` cannot be read, or None. Read-only."""
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            con.execute("SELECT count(*) FROM sqlite_master").fetchone()
        finally:
            con.close()
    except sqlite3.Error as exc:
        if "locked" in str(exc):
            return None  # another bench process is writing: it is a database
        return str(exc)
    return None


def count_runs(db: Path) -> int | None:
    """How many MLflow runs `db` holds (0 without a runs table); None when they cannot be counted. Read-only."""
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            con.execute("PRAGMA writable_schema=ON")  # read past a schema entry that does not parse
            if not con.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='runs'").fetchone():
                return 0
            return int(con.execute("SELECT count(*) FROM runs").fetchone()[0])
        finally:
            con.close()
    except sqlite3.Error:
        return None
