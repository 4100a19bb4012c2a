"""Check one recovered run file: usage check_crash.py FILE TRACE KILL_EPOCH."""
import datetime
import sys

import numpy as np

from h5run import open_run, text
from wiretrace import is_subsequence, sent_values



def counter_start(f, name, g):
    """A counter series' raw reading at the run's start: its counter_at_start
    dataset (there in a file left by a crash too); None if the series is not a
    counter, or had no reading."""
    if "counter_at_start" not in g:
        return None
    v = float(g["counter_at_start"][0])
    return None if np.isnan(v) else v


path, trace, t_kill = sys.argv[1], sys.argv[2], float(sys.argv[3])
f = open_run(path, seconds=60)
problems = []
state = text(f.attrs["state"])
if state != "interrupted":
    problems.append(f"state is {state!r}, expected 'interrupted'")
start = datetime.datetime.fromisoformat(text(f.attrs["start_time"]).replace("Z", "+00:00")).timestamp()
sent = sent_values(text(f["rig"][()]), trace)
lags = []
for name, g in f["channels"].items():
    t, v = g["time"][:], g["value"][:]
    if len(t) != len(v):
        problems.append(f"{name}: {len(t)} times but {len(v)} values")
        continue
    if len(t) == 0:
        problems.append(f"{name}: no samples")
        continue
    if np.any(np.diff(t) <= 0):
        problems.append(f"{name}: time stamps do not increase")
    lag = t_kill - (start + t[-1])
    lags.append(lag)
    if not -0.05 <= lag <= 1.0:
        problems.append(f"{name}: last sample {lag:.3f} s before the kill (more than 1 s)")
    finite = v[np.isfinite(v)]
    if text(g.attrs.get("kind", "")) == "derived":
        # A syringe's fill level is worked out from its pump's counter, not sent
        # on the wire: it must be the level at the start minus what the recorded
        # counter says was infused since, at the same moments.
        pump = name[: -len(".fill")]
        dt, dv = f["channels"][pump + ".dispensed"]["time"][:], f["channels"][pump + ".dispensed"]["value"][:]
        fv = f["channels"][pump + ".flow"]["value"][:]
        first = dv[np.isfinite(dv)][0] if np.isfinite(dv).any() else np.nan
        fill0 = f["syringes"][pump].attrs["fill_at_start"]
        if not (fv < 0).any():
            for tt, vv in zip(t, v):
                at = dv[dt == tt]
                if len(at) != 1 or abs(vv - (fill0 - (at[0] - first))) > 1e-6:
                    problems.append(f"{name}: {vv!r} at {tt} s is not {fill0} uL less what {pump} infused")
                    break
        continue
    wire = sent.get(name, [])
    raw = counter_start(f, name, g)
    if raw is not None:
        # A counter is stored from the run's start: compare with what was sent
        # less the reading there (the same subtraction, so the same doubles).
        wire = [w - raw for w in wire]
    elif name.endswith(".dispensed") and len(finite):
        problems.append(f"{name}: a counter without its counter_at_start")
    bad = is_subsequence(list(finite), wire)
    if bad >= 0:
        problems.append(f"{name}: recorded value #{bad} = {finite[bad]!r} was never sent in this order")
for name, g in f["setpoints"].items():
    if np.any(np.diff(g["time"][:]) < 0):
        problems.append(f"setpoint {name}: time stamps go back")
print(f"  {path.split('/')[-1]}: {len(lags)} channels, {sum(len(g['time']) for g in f['channels'].values())} "
      f"samples, last sample {min(lags):.2f}-{max(lags):.2f} s before the kill")
if problems:
    sys.stderr.write("; ".join(problems) + "\n")
    sys.exit(1)
