"""The MLflow store after a kill: a hot journal left by a writer killed in mid-transaction is rolled back and
`bench run` goes on with every earlier run; a store that is really damaged is refused with its run count and
the recovery offered before any advice to move it aside."""
from __future__ import annotations

import sqlite3
import subprocess
import sys

import pytest
from mlflow.tracking import MlflowClient

from bench.errors import BenchError

TINY = ["--model", "bench-tiny", "--pretrained", "none", "--workers", "0", "--set", "epochs=1", "--set", "batch_size=8"]
# Opens a transaction, spills changed pages into the database file (a one-page cache), then waits to be killed.
WRITER = """
import sqlite3, sys, time
con = sqlite3.connect(sys.argv[1], isolation_level=None)
con.execute("PRAGMA cache_size=1")
con.execute("BEGIN")
con.execute("UPDATE runs SET status='RUNNING'")
con.executemany("INSERT INTO tags(key, value, run_uuid) VALUES (?, ?, ?)",
                [(f"k{i}", "x" * 500, sys.argv[2]) for i in range(2000)])
print("mid-transaction", flush=True)
time.sleep(60)
"""


def store_with_runs(db, n: int) -> list[str]:
    client = MlflowClient(f"sqlite:///{db}")
    exp = client.create_experiment("earlier")
    ids = [client.create_run(exp).info.run_id for _ in range(n)]
    for run_id in ids:
        client.log_metric(run_id, "acc", 0.5)
        client.set_terminated(run_id)
    return ids


def kill_a_writer_mid_transaction(db, run_id: str) -> None:
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(db), run_id], stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline().strip() == "mid-transaction"
    finally:
        writer.kill()  # SIGKILL: no rollback, no cleanup
        writer.wait()


@pytest.mark.slow  # kills a subprocess
def test_a_hot_journal_left_by_a_killed_writer_is_rolled_back_and_bench_run_keeps_every_run(bench_home, folder_root, capsys):
    from bench.cli.main import main

    db = bench_home / "mlflow.db"
    ids = store_with_runs(db, 8)
    kill_a_writer_mid_transaction(db, ids[0])
    assert (bench_home / "mlflow.db-journal").stat().st_size > 0
    with pytest.raises(sqlite3.OperationalError, match="readonly"):  # a real hot journal: read-only opens fail
        sqlite3.connect(f"file:{db}?mode=ro", uri=True).execute("SELECT count(*) FROM runs").fetchone()

    code = main(["run", "--folder", str(folder_root), "--methods", "zeroshot", *TINY])
    assert code == 0, capsys.readouterr().err
    assert not (bench_home / "mlflow.db-journal").exists()
    client = MlflowClient(f"sqlite:///{db}")
    earlier = client.search_runs([client.get_experiment_by_name("earlier").experiment_id])
    assert sorted(r.info.run_id for r in earlier) == sorted(ids)
    assert {r.info.status for r in earlier} == {"FINISHED"} and {r.data.metrics["acc"] for r in earlier} == {0.5}
    assert not [t for t in client.get_run(ids[0]).data.tags if t.startswith("k")]  # the killed writes are gone
    new = client.search_runs([client.get_experiment_by_name("folder").experiment_id])
    assert [r.info.status for r in new] == ["FINISHED"]


def test_a_damaged_store_counts_its_runs_and_offers_recovery_before_moving_it(tmp_path, mlflow_template):
    import shutil

    from bench.launch.preflight import check_tracking_uri

    db = tmp_path / "mlflow.db"
    shutil.copy(mlflow_template, db)
    store_with_runs(db, 3)
    with sqlite3.connect(db) as con:  # the runs table's pages stay whole; the schema's text does not
        con.execute("PRAGMA writable_schema=ON")
        con.execute("UPDATE sqlite_master SET sql='CREATE TABLE broken(' WHERE name='metrics'")
    with pytest.raises(BenchError) as err:
        check_tracking_uri(f"sqlite:///{db}")
    text = str(err.value)
    assert "is damaged (malformed database schema" in text and "It holds 3 run(s)." in text
    assert text.index(".recover") < text.index(f"mv {db} {db}.bad")
    assert db.exists()  # nothing was moved or rewritten
