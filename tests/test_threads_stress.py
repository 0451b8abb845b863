"""Many threads at once: 32 threads doing path syscalls (open, stat, readlink, mkdir,
rename, unlink...) in a private directory each while other threads fork and exec
/bin/true, for a few seconds (tests/threads_stress.c). The sandbox must finish within a
deadline (no lost or stuck syscall, no deadlock in the sentry or the gofer) and, as
under runc, with no failed round.
"""
from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest
from conftest import build_static

SECONDS = 5
FILE_THREADS = 32
FORK_THREADS = 4
# Generous for two shared cores, far below "stuck": a lost answer hangs forever.
DEADLINE = SECONDS + 60


@pytest.fixture(scope="module")
def stress_bin(tmp_path_factory) -> Path:
    return build_static(tmp_path_factory, Path(__file__).with_name("threads_stress.c"),
                        "-pthread")


def _bundle(make_bundle, stress_bin: Path):
    bundle = make_bundle("/bin/threads_stress", str(SECONDS), str(FILE_THREADS),
                         str(FORK_THREADS), readonly=False)
    shutil.copy(stress_bin, bundle.rootfs / "bin" / "threads_stress")
    return bundle


def test_threads_doing_file_syscalls_while_others_fork_and_exec(runsc, runc, make_bundle,
                                                                 stress_bin):
    expected = runc(_bundle(make_bundle, stress_bin))  # conftest: 60 s
    assert expected.returncode == 0, expected.stderr
    start = time.monotonic()
    try:
        got = runsc.run(_bundle(make_bundle, stress_bin), timeout=DEADLINE)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the sandbox did not finish within {DEADLINE} s: a syscall is stuck")
    took = time.monotonic() - start
    assert got.returncode == 0, got.stderr
    assert got.stdout == expected.stdout, (got.stdout, got.stderr)
    assert "file errors: 0\nfork errors: 0\n" in got.stdout
    assert "file rounds: some\nfork rounds: some\n" in got.stdout
    print(f"runsc-py: {took:.1f} s, {got.stderr.strip()}; runc: {expected.stderr.strip()}")
