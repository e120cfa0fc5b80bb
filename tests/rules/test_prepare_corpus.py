"""
Rule test code for unit testing of rules generated with Snakemake 9.27.1.
"""

import os
import sys
import shutil
import tempfile
from pathlib import Path
from subprocess import check_output

sys.path.insert(0, os.path.dirname(__file__))


def test_prepare_corpus(conda_prefix):

    with tempfile.TemporaryDirectory() as tmpdir:
        workdir = Path(tmpdir) / "workdir"
        config_path = Path("tests/rules/prepare_corpus/config")
        data_path = Path("tests/rules/prepare_corpus/data")
        expected_path = Path("tests/rules/prepare_corpus/expected")

        # Copy config to the temporary workdir.
        shutil.copytree(config_path, workdir)

        # Copy data to the temporary workdir.
        shutil.copytree(data_path, workdir, dirs_exist_ok=True)

        # Run the test job.
        check_output(
            [
                sys.executable,
                "-m",
                "snakemake",
                "results/tiny/data/synthetic/train.jsonl",
                "results/tiny/data/synthetic/valid.jsonl",
                "results/tiny/data/synthetic/test.jsonl",
                "results/tiny/data/synthetic/stats.json",
                "--snakefile",
                "Snakefile",
                "-f",
                "--notemp",
                "--show-failed-logs",
                "-j1",
                "--target-files-omit-workdir-adjustment",
                "--allowed-rules",
                "prepare_corpus",
                "--configfile",
                "config.yaml",
                "tests/slurm/subset.yaml",
                "--directory",
                workdir,
            ]
            + conda_prefix,
            env=dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")),
        )

        # Check the output byte by byte using cmp/zmp/bzcmp/xzcmp.
        # To modify this behavior, you can inherit from common.OutputChecker in here
        # and overwrite the method `compare_files(generated_file, expected_file),
        # also see common.py.
        import common
        common.DeterministicChecker(data_path, expected_path, workdir).check()
