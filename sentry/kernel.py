"""The virtual kernel the workload sees: identity, and the services handlers use."""
from __future__ import annotations

from dataclasses import dataclass

from gofer.client import GoferClient

# What gVisor reports (DESIGN.md): the workload never learns the host kernel.
RELEASE = "4.4.0"
VERSION = "#1 SMP Sun Jan 10 15:06:54 PST 2016"


@dataclass
class Kernel:
    gofer: GoferClient
    hostname: str
    domainname: str = "(none)"
    sysname: str = "Linux"
    release: str = RELEASE
    version: str = VERSION
    machine: str = "x86_64"
    procfs: object = None
