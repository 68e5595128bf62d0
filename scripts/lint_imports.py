"""Run import-linter's contracts (pyproject.toml, [tool.importlinter]) on the package as it installs.

bench.methods, bench.datasets, bench.sweeps and bench.reports live in top-level folders mapped into `bench`
by setuptools' package-dir; import-linter finds a package's modules by walking its folder, so it would not see
them under an editable install. This copies the Python files into the installed layout in a temporary folder
(the mapping is read from pyproject.toml, so it cannot drift) and runs `lint-imports` there.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def installed_layout(dest: Path) -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    mapping = config["package-dir"]
    for package in config["packages"]:
        source = ROOT / mapping.get(package, package.replace(".", "/"))
        target = dest.joinpath(*package.split("."))
        target.mkdir(parents=True, exist_ok=True)
        for module in source.glob("*.py"):
            shutil.copy2(module, target / module.name)


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="bench-lint-imports-") as tmp:
        installed_layout(Path(tmp))
        env = {**os.environ, "PYTHONPATH": tmp + os.pathsep + os.environ.get("PYTHONPATH", "")}
        lint = Path(sys.executable).with_name("lint-imports")
        command = [str(lint) if lint.exists() else "lint-imports", str(ROOT / "pyproject.toml"),
                   "--no-cache"]
        return subprocess.run(command, env=env, cwd=tmp).returncode


if __name__ == "__main__":
    sys.exit(main())
