"""The runsc-py benchmark suite: the same cases under runsc-py, runc and gVisor's runsc.

    python3 -m bench [--reps N] [--quick] [--cases a,b] [--out DIR]

Modules: rootfs (helpers, root filesystems, bundles), cases (what is measured),
runners (running a bundle under each runtime), report (tables, JSON, chart), suite (the
command line and the interleaved loop).
"""
