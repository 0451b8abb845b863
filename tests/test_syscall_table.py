"""The syscall table is the single source of truth: the listing and the filter come from it."""
from __future__ import annotations

import errno
import io
import re
import tempfile

from syscalls.table import TABLE, Kind


def test_listing_names_every_syscall_once(runsc):
    r = runsc("syscalls")
    assert r.returncode == 0
    rows = [line.split() for line in r.stdout.splitlines()[1:-1]]
    assert [int(row[0]) for row in rows] == sorted(TABLE)
    by_name = {row[1]: row for row in rows}
    assert by_name["mount"][2:4] == ["deny", "EPERM"]
    assert by_name["kexec_load"][2:4] == ["deny", "EPERM"]
    assert by_name["openat"][2] == "emulate"
    assert by_name["read"][2] == "passthrough"
    assert by_name["io_uring_setup"][2:4] == ["deny", "ENOSYS"]
    assert "every other number: deny ENOSYS" in r.stdout


def test_every_path_based_call_is_emulated():
    path_calls = """open openat openat2 creat stat lstat newfstatat statx access faccessat
        faccessat2 readlink readlinkat execve execveat chdir fchdir mkdir mkdirat unlink
        unlinkat rmdir rename renameat renameat2 link linkat symlink symlinkat chmod
        fchmodat chown lchown fchownat utimensat truncate mknod mknodat statfs""".split()
    kinds = {sc.name: sc.kind for sc in TABLE.values()}
    assert {n: kinds[n] for n in path_calls} == dict.fromkeys(path_calls, Kind.EMULATE)


def test_filter_is_generated_from_the_table():
    from sentry.platform.seccomp import build_filter

    with tempfile.TemporaryFile("w+") as f:
        build_filter(no_new_privs=True).export_pfc(f)
        f.seek(0)
        pfc = f.read()
    actions: dict[int, set[str]] = {}
    current = None
    for line in io.StringIO(pfc):
        m = re.search(r'filter for syscall "[^"]*" \((\d+)\)', line)
        if m:
            current = int(m.group(1))
        elif current is not None and "action" in line:
            actions.setdefault(current, set()).add(line.split("action")[1].strip(" ;\n"))
    for sc in TABLE.values():
        got = actions.get(sc.nr, set())
        if sc.kind is Kind.EMULATE:
            assert got == {"0x7fc00000"}, sc.name  # SECCOMP_RET_USER_NOTIF
        elif sc.kind is Kind.PASSTHROUGH:
            assert "ALLOW" in got, sc.name
        elif sc.errno != errno.ENOSYS:
            assert got == {f"ERRNO({sc.errno})"}, sc.name
    assert re.search(r"# default action\n\s*action ERRNO\(38\)", pfc)
