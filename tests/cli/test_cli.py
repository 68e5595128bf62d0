"""The `bench` command as users run it: errors before any work, the full method list, the result table."""
import os
import subprocess
import sys

import pytest

from bench.cli.main import main
from bench.errors import BenchError

TINY = ["--model", "bench-tiny", "--pretrained", "none", "--workers", "0"]


def run_cli(args, capsys):
    code = main(args)
    out = capsys.readouterr()
    return code, out.out, out.err


def nothing_recorded(home):
    return not (home / "jobs").exists()


def test_help_does_not_import_torch():
    code = ("import sys\nfrom bench.cli.main import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "assert 'torch' not in sys.modules, 'bench --help imported torch'\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "run" in proc.stdout and "list" in proc.stdout


@pytest.mark.parametrize("args,expected", [
    (["--methods", "zeroshot,flip"], "Unknown method 'flip'. Did you mean 'flyp'?"),
    (["--model", "ViT-B-61"], "Unknown model 'ViT-B-61'. Did you mean 'ViT-B-16'?"),
    (["--set", "lrr=1e-3"], "unknown hyperparameter 'lrr'. Did you mean 'lr'?"),
    (["--set", "epochs=abc"], "Hyperparameter 'epochs' expects int"),
    (["--set", "flyp.mask_same_class=maybe", "--methods", "flyp"], "expects bool"),
    (["--set", "selection=worst"], "must be one of ('best', 'last', 'min_val_loss')"),
    (["--set", "flyp.lr=1e-3", "--methods", "ft"], "scoped to method 'flyp', which is not selected"),
    (["--set", "nokeyvalue"], "--set expects key=value"),
    (["--methods", "zeroshot,wiseft"], "wiseft interpolates finished finetuning runs"),
])
def test_bad_input_gets_one_clear_error_before_any_work(bench_home, folder_root, capsys, args, expected):
    base = ["run", "--folder", str(folder_root)] + TINY
    code, out, err = run_cli(base + args, capsys)
    assert code == 2
    assert expected in err
    assert "Traceback" not in err and err.count("bench: error") == 1
    assert nothing_recorded(bench_home)


def test_unknown_suite_lists_valid_names(bench_home, capsys):
    code, _, err = run_cli(["run", "--suite", "distribution-shfit"] + TINY, capsys)
    assert code == 2 and "Unknown suite 'distribution-shfit'" in err and "Valid suites:" in err


def test_unknown_dataset_lists_valid_names():
    from bench.spec.tasks import dataset_source

    with pytest.raises(BenchError, match=r"Unknown dataset 'foldr'. Did you mean 'folder'\?.*Valid datasets: folder"):
        dataset_source({"name": "foldr"})


def test_missing_folder_dataset_names_the_path(bench_home, tmp_path, capsys):
    missing = tmp_path / "nowhere" / "mydata"
    code, _, err = run_cli(["run", "--folder", str(missing)] + TINY, capsys)
    assert code == 2 and str(missing) in err and "Expected layout" in err


def test_missing_checkpoint_file_is_named(bench_home, folder_root, tmp_path, capsys):
    ckpt = tmp_path / "weights" / "model.pt"
    code, _, err = run_cli(["run", "--folder", str(folder_root), "--model", "bench-tiny", "--pretrained", str(ckpt)], capsys)
    assert code == 2 and str(ckpt) in err


def test_bad_config_file_keys(bench_home, folder_root, tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("hparams: {lr: 1e-4}\nepochz: 3\n")
    code, _, err = run_cli(["run", "--folder", str(folder_root), "--config", str(cfg)] + TINY, capsys)
    assert code == 2 and "unknown key(s) ['epochz']" in err


def test_dry_run_prints_jobs_and_runs_nothing(bench_home, folder_root, capsys):
    code, out, _ = run_cli(["run", "--folder", str(folder_root), "--methods", "ft,flyp", "--seeds", "0,1",
                            "--dry-run"] + TINY, capsys)
    assert code == 0 and "4 job(s)" in out and out.count(" ft ") == 2
    assert nothing_recorded(bench_home)


@pytest.mark.slow  # every method in a subprocess
def test_every_method_runs_from_the_command_line_and_prints_the_table(bench_home, folder_root):
    cmd = [os.path.join(os.path.dirname(sys.executable), "bench"), "run", "--folder", str(folder_root),
           "--methods", "zeroshot,lp,ft,lpft,flyp,l2sp,flyp-ce,wiseft", "--set", "epochs=1", "--set", "batch_size=8",
           "--set", "warmup=1", "--set", "lr=1e-3"] + TINY
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "BENCH_HOME": str(bench_home)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    table = proc.stdout[proc.stdout.index("| Method"):]
    rows = [line.split("|")[1].strip() for line in table.splitlines() if line.startswith("| ")]
    assert rows == ["Method", "Zeroshot", "LP", "FT", "L2-SP", "LP-FT", "FLYP", "FLYP-CE", "FT + WiSE-FT",
                    "L2-SP + WiSE-FT", "LP-FT + WiSE-FT", "FLYP + WiSE-FT", "FLYP-CE + WiSE-FT"]
    header = table.splitlines()[0]
    assert "ID test" in header and "OOD ood" in header and "Avg OOD" in header
    assert (bench_home / "reports" / "folder" / "report.md").is_file()
