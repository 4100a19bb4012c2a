#!/usr/bin/python3
"""Wait until a process (any, not only a child) exits: pidwait.py PID SECONDS.

Uses a pidfd, which becomes readable when the process exits, so there is no
polling. Exit 0 if it is gone, 1 if it is still running after SECONDS.
"""
import os
import select
import sys

pid, seconds = int(sys.argv[1]), float(sys.argv[2])
try:
    fd = os.pidfd_open(pid)
except ProcessLookupError:
    sys.exit(0)
readable, _, _ = select.select([fd], [], [], seconds)
sys.exit(0 if readable else 1)
