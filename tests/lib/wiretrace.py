"""Decode a perfuse-sim --trace file into the values each channel was sent.

The decoding is written here from the profiles and the New Era reply format,
independently of the daemon's C code, so that a test can check every value a
run file holds against what went over the wire."""
import math
import struct

import yaml


def _f32(b):
    return struct.unpack(">f", b)[0]


_ORDERS = {"abcd": (0, 1, 2, 3), "badc": (1, 0, 3, 2), "cdab": (2, 3, 0, 1), "dcba": (3, 2, 1, 0)}


def _decode(kind, order, b):
    """Raw value of one register field from its wire bytes (big-endian words)."""
    if kind in ("u16", "i16"):
        v = int.from_bytes(b[:2], "big")
        return v - 65536 if kind == "i16" and v >= 32768 else v
    b = bytes(b[i] for i in _ORDERS[order or "abcd"])
    if kind == "f32":
        return _f32(b)
    v = int.from_bytes(b, "big")
    return v - (1 << 32) if kind == "i32" and v >= (1 << 31) else v


def _rig_devices(rig_text):
    rig = yaml.safe_load(rig_text)
    buses = {b["name"]: b for b in rig["buses"]}
    return rig, buses


def sent_values(rig_text, trace_path):
    """{channel: [value, ...]} in the order the simulator sent them."""
    rig, buses = _rig_devices(rig_text)
    mb = {}      # ("rtu"|"tcp", unit) -> (device, profile channels)
    ne = {}      # pump address -> device
    ob1 = None   # the OB1-style pressure controller (one on its line)
    for d in rig["devices"]:
        bus = buses[d["bus"]]
        if d["driver"] == "modbus":
            prof = yaml.safe_load(open(d["profile"]))
            kind = "rtu" if bus["type"] == "modbus-rtu" else "tcp"
            mb[(kind, int(d["unit"]))] = (d["name"], prof["channels"])
        elif d["driver"] == "newera":
            ne[int(d.get("address", 0))] = d["name"]
        elif d["driver"] == "ob1":
            ob1 = d["name"]
    fc_table = {1: "coil", 2: "discrete", 3: "holding", 4: "input"}
    out = {}
    for line in open(trace_path, errors="replace"):
        f = line.split()
        if len(f) == 7 and f[0] == "mb":
            key = (f[1], int(f[2]))
            if key not in mb:
                continue
            dev, chans = mb[key]
            fc, addr, count, data = int(f[3]), int(f[4]), int(f[5]), bytes.fromhex(f[6])
            for name, c in chans.items():
                if c["table"] != fc_table.get(fc):
                    continue
                a = int(c["address"])
                if fc in (1, 2):
                    if not addr <= a < addr + count:
                        continue
                    i = a - addr
                    raw = (data[i // 8] >> (i % 8)) & 1
                else:
                    words = 2 if c["type"] in ("u32", "i32", "f32") else 1
                    if not (addr <= a and a + words <= addr + count):
                        continue
                    off = 2 * (a - addr)
                    raw = _decode(c["type"], c.get("order"), data[off:off + 2 * words])
                v = raw * float(c.get("scale", 1.0)) + float(c.get("offset", 0.0))
                out.setdefault(f"{dev}.{name}", []).append(float(v))
        elif len(f) == 3 and f[0] == "ne":
            cmd, reply = f[1], f[2]
            if len(reply) < 3 or not reply[:2].isdigit():
                continue
            addr, status, data = int(reply[:2]), reply[2], reply[3:]
            dev = ne.get(addr)
            if dev is None or status == "A":
                continue
            body = cmd[2:] if cmd[:2].isdigit() else cmd[1:] if cmd[:1].isdigit() else cmd
            if body == "RAT":
                units = {"UM": 1.0, "MM": 1000.0, "UH": 1.0 / 60.0, "MH": 1000.0 / 60.0}
                num, unit = data[:-2], data[-2:]
                rate = float(num) * units[unit]
                v = rate if status == "I" else -rate if status == "W" else 0.0
                out.setdefault(f"{dev}.flow", []).append(v)
            elif body == "DIS" and data.startswith("I"):
                inf = data[1:data.index("W")]
                unit = data[-2:]
                out.setdefault(f"{dev}.dispensed", []).append(float(inf) * (1000.0 if unit == "ML" else 1.0))
        elif len(f) == 3 and f[0] == "ob1" and ob1 is not None:
            # <PINGA?:P1:S1:T1:P2:S2:T2:...: each regulator's pressure (mbar),
            # then its sensor's value and type.
            cmd, reply = f[1], f[2]
            if cmd != "<PINGA?" or not reply.startswith("<PINGA?:"):
                continue
            fields = reply.split(":")[1:]
            for i in range(4):
                if 3 * i < len(fields):
                    out.setdefault(f"{ob1}.p{i + 1}", []).append(float(fields[3 * i]))
    return out


def close(a, b):
    return a == b or math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


def is_subsequence(recorded, sent):
    """Index of the first recorded value not found, in order, in sent; -1 if all are."""
    j = 0
    for i, v in enumerate(recorded):
        while j < len(sent) and not close(sent[j], v):
            j += 1
        if j == len(sent):
            return i
        j += 1
    return -1
