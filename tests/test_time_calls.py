"""adjtimex, clock_adjtime and settimeofday (issue 12): Linux's argument checks and
reads, and never a change of the host's clock (syscalls/sys_time.py)."""
from __future__ import annotations

import time

from conftest import probe_lines

OPS = ("adjtimex", "0", "adjtimex", "0xa001", "adjtimex", "0x8000", "adjtimex", "1",
       "settimeofday", "2000000", "settimeofday", "-1", "settimeofday", "null",
       "settimeofday", "5")


def test_without_cap_sys_time_as_linux(runsc, runc, make_bundle):
    """A read works for anyone; a change is EPERM after the argument checks (EINVAL)."""
    bundle = make_bundle("probe", *OPS)
    got = probe_lines(runsc.run(bundle).stdout)
    assert got == probe_lines(runc(bundle).stdout)
    assert got["adjtimex"][0] in ("0", "5")  # TIME_OK or TIME_ERROR: the clock's state
    assert got["adjtimex"][1:] == [got["adjtimex"][0], "EINVAL", "EPERM"]
    assert got["settimeofday"] == ["EINVAL", "EINVAL", "EPERM", "EPERM"]


def test_with_cap_sys_time_nothing_changes(runsc, runc, make_bundle):
    """A process with CAP_SYS_TIME could set the host's clock: the sentry refuses
    (EPERM, also for adjtimex's read: README), and the clock is untouched.
    settimeofday(NULL, NULL), which changes nothing, is 0 as under runc (the only
    operation runc runs here: anything else would set the host's clock)."""
    bundle = make_bundle("probe", *OPS)
    caps = bundle.spec["process"]["capabilities"]
    for kind in caps:
        caps[kind] = sorted({*caps[kind], "CAP_SYS_TIME"})
    bundle.write()
    before = time.time()
    got = probe_lines(runsc.run(bundle).stdout)
    assert abs(time.time() - before) < 30
    assert got["adjtimex"] == ["EPERM", "EPERM", "EPERM", "EPERM"]
    assert got["settimeofday"] == ["EINVAL", "EINVAL", "0", "EPERM"]
    bundle.set_args("probe", "settimeofday", "null")
    assert probe_lines(runc(bundle).stdout)["settimeofday"] == ["0"]
