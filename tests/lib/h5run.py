"""Helpers for tests that read run files the way researchers do (h5py)."""
import signal

import h5py
import numpy as np


class Timeout(Exception):
    pass


def _alarm(signum, frame):
    raise Timeout("h5py read took too long")


def open_run(path, seconds=30, swmr=False):
    """Open a run file read-only, giving up after `seconds` (a damaged SWMR file can hang h5py)."""
    signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(seconds)
    try:
        return h5py.File(path, "r", swmr=swmr)
    finally:
        signal.alarm(0)


def text(v):
    """Fixed-length strings come back as bytes; make them str."""
    if isinstance(v, (bytes, np.bytes_)):
        return v.decode("utf-8", "replace").rstrip("\0")
    return str(v)


def series(f, group, name):
    """(time, value) arrays of /group/name."""
    g = f[group][name]
    return np.asarray(g["time"][:]), np.asarray(g["value"][:])
