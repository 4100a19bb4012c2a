"""The generic Modbus driver against a third-party server: pymodbus, over TCP
and over RTU on a pty, through the whole daemon (perfused, perfusectl).

usage: modbus_pymodbus.py BUILD WORKDIR

A pymodbus server holds registers encoded here with Python's struct, for
every type (u16, i16, u32, i32, f32, bool) and every 32-bit word order (abcd,
cdab, badc, dcba), with scale and offset, in holding and input registers,
coils and discrete inputs. perfused reads them through a profile; the values
in `perfusectl status` must be the encoded ones. Then `perfusectl set` writes
each writable channel and the server's registers must decode, here, to the
value set. Nothing of perfuse's own codec is used to check it.

For RTU, the server and perfused each open one end of a pair of ptys that
this script bridges (a pty has only one named end)."""
import asyncio
import json
import os
import pty
import queue
import select
import struct
import sys
import threading
import time
import tty

from pymodbus.datastore import (ModbusSequentialDataBlock, ModbusServerContext,
                                ModbusSlaveContext)
from pymodbus.framer.rtu_framer import ModbusRtuFramer
from pymodbus.framer.socket_framer import ModbusSocketFramer
from pymodbus.server.async_io import ModbusSerialServer, ModbusTcpServer

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
from perfused import perfusectl, start_perfused, stop_all  # noqa: E402

build, work = sys.argv[1], sys.argv[2]
failures = []
procs = []
UNIT = 17
ORDERS = ("abcd", "cdab", "badc", "dcba")


def check(cond, what):
    print(("ok - " if cond else "not ok - ") + what, flush=True)
    if not cond:
        failures.append(what)


# --- encoding, independent of perfuse: registers as the device holds them

def words(fmt, value, order):
    """The 16-bit registers of a 32-bit value in a word order (A = most significant byte)."""
    a, b, c, d = struct.pack(">" + fmt, value)
    wire = {"abcd": (a, b, c, d), "cdab": (c, d, a, b), "badc": (b, a, d, c), "dcba": (d, c, b, a)}[order]
    return [wire[0] << 8 | wire[1], wire[2] << 8 | wire[3]]


def unwords(fmt, regs, order):
    """The inverse of words()."""
    x = bytes([regs[0] >> 8, regs[0] & 255, regs[1] >> 8, regs[1] & 255])
    back = {"abcd": (0, 1, 2, 3), "cdab": (2, 3, 0, 1), "badc": (1, 0, 3, 2), "dcba": (3, 2, 1, 0)}[order]
    return struct.unpack(">" + fmt, bytes(x[i] for i in back))[0]


def channels():
    """(name, table, address, type, order, scale, offset, raw value) for every case."""
    out, addr = [], 0
    out.append(("h_u16", "holding", addr, "u16", None, 0.1, -10.0, 61234)); addr += 1
    out.append(("h_i16", "holding", addr, "i16", None, 1.0, 0.0, -1234)); addr += 1
    for t, fmt, raw in (("u32", "I", 3000000000), ("i32", "i", -123456789), ("f32", "f", -1234.5)):
        for o in ORDERS:
            out.append((f"h_{t}_{o}", "holding", addr, t, o, 1.0, 0.0, raw)); addr += 2
    out.append(("h_f32_scaled", "holding", addr, "f32", "cdab", 2.0, 1.0, 0.15625)); addr += 2
    addr = 0
    out.append(("i_u16", "input", addr, "u16", None, 0.01, 0.0, 3712)); addr += 1
    out.append(("i_i16", "input", addr, "i16", None, 0.1, 5.0, -250)); addr += 1
    for t, fmt, raw in (("u32", "I", 4000000001), ("i32", "i", -2), ("f32", "f", 37.25)):
        for o in ORDERS:
            out.append((f"i_{t}_{o}", "input", addr, t, o, 1.0, 0.0, raw)); addr += 2
    out.append(("c_0", "coil", 3, "bool", None, 1.0, 0.0, 1))
    out.append(("c_1", "coil", 4, "bool", None, 1.0, 0.0, 0))
    out.append(("d_0", "discrete", 5, "bool", None, 1.0, 0.0, 1))
    return out


FMT = {"u32": "I", "i32": "i", "f32": "f"}


def encode(typ, order, raw):
    if typ in FMT:
        return words(FMT[typ], raw, order)
    if typ == "u16":
        return [raw]
    if typ == "i16":
        return [raw & 0xFFFF]
    return [raw]


def decode(typ, order, regs):
    if typ in FMT:
        return unwords(FMT[typ], regs, order)
    if typ == "i16":
        return regs[0] - 65536 if regs[0] >= 32768 else regs[0]
    return regs[0]


GROUPS = {"h": ("holding",), "i": ("input",), "b": ("coil", "discrete")}


def device_of(table):
    """A device holds at most 16 channels: one per group of tables, all on unit UNIT."""
    return next(f"dev_{g}" for g, tables in GROUPS.items() if table in tables)


def profile(path, group, hz):
    lines = [f"profile: pymodbus-{group}", "description: every type and word order", "channels:"]
    for name, table, addr, typ, order, scale, offset, _ in channels():
        if table not in GROUPS[group]:
            continue
        writable = table in ("holding", "coil")
        lines += [f"  {name}:", f"    table: {table}", f"    address: {addr}", f"    type: {typ}"]
        if order:
            lines.append(f"    order: {order}")
        lines += [f"    scale: {scale}", f"    offset: {offset}", "    quantity: plain number",
                  '    unit: ""', f"    access: {'rw' if writable else 'r'}",
                  "    range: [-5000000000, 5000000000]", f"    sample_hz: {hz}"]
    open(path, "w").write("\n".join(lines) + "\n")


class Block(ModbusSequentialDataBlock):
    """A data block that tells waiters when a client writes to it."""

    def __init__(self, address, values, written):
        super().__init__(address, values)
        self.written = written

    def setValues(self, address, values):  # noqa: N802 - pymodbus's name
        with self.written:
            super().setValues(address, values)
            self.written.notify_all()


def context(written):
    hr, ir, co, di = [0] * 64, [0] * 64, [0] * 16, [0] * 16
    for name, table, addr, typ, order, _, _, raw in channels():
        regs = encode(typ, order, raw)
        target = {"holding": hr, "input": ir, "coil": co, "discrete": di}[table]
        target[addr:addr + len(regs)] = regs
    # pymodbus's sequential blocks are 1-based inside: address 0 on the wire is index 1.
    slave = ModbusSlaveContext(hr=Block(1, hr, written), ir=Block(1, ir, written),
                               co=Block(1, co, written), di=Block(1, di, written), zero_mode=False)
    return ModbusServerContext(slaves={UNIT: slave}, single=False)


def serve(make_server, ready):
    """Run a pymodbus server in this thread's own event loop; put it in ready once it serves."""
    async def main():
        server = make_server()
        if isinstance(server, ModbusSerialServer):
            await server.start()            # opens the port; serve_forever only idles
            task = asyncio.ensure_future(server.serve_forever())
        else:
            task = asyncio.ensure_future(server.serve_forever())
            await server.serving            # listening: the port is known
        ready.put(server)
        await task
    try:
        asyncio.run(main())
    except Exception as e:  # noqa: BLE001 - reported to the waiting test
        ready.put(e)


def bridge(a, b, stop):
    """Copy bytes both ways between two pty masters until stop is set."""
    while not stop.is_set():
        r, _, _ = select.select([a, b], [], [], 0.2)
        for fd in r:
            try:
                data = os.read(fd, 4096)
            except OSError:
                continue
            os.write(b if fd == a else a, data)


def start_daemon(rig, d):
    log = open(os.path.join(d, "perfused.log"), "w")
    return start_perfused(build, ["--rig", rig, "--socket", os.path.join(d, "sock"),
                                  "--data-dir", os.path.join(d, "runs")], log, procs)


def ctl(d, *args):
    return perfusectl(build, os.path.join(d, "sock"), *args, timeout=30)


def bridged_ptys():
    """Two ptys whose masters this script joins: (a path for the server, a path for
    perfused, an event that stops the bridge). A pty has only one named end."""
    m1, s1 = pty.openpty()
    m2, s2 = pty.openpty()
    for fd in (s1, s2):
        tty.setraw(fd)
    stop = threading.Event()
    threading.Thread(target=bridge, daemon=True, args=(m1, m2, stop)).start()
    return os.ttyname(s1), os.ttyname(s2), stop


def rtu_server(store, path, baud):
    """A pymodbus RTU slave serving STORE on the serial port PATH, once it has the port open."""
    ready = queue.Queue()
    threading.Thread(target=serve, daemon=True, args=(
        lambda: ModbusSerialServer(store, ModbusRtuFramer, port=path, baudrate=baud), ready)).start()
    server = ready.get(timeout=10)
    if isinstance(server, Exception):
        raise server
    return server


def values(d):
    st = json.loads(ctl(d, "--json", "status").stdout)
    return {c["name"]: c.get("value") for c in st["channels"]}


def expected(scale, offset, raw):
    return raw * scale + offset


def close(a, b):
    return a is not None and abs(a - b) <= 1e-6 * max(1.0, abs(b))


def case(kind, bus_line, store, written, hz):
    print(f"# {kind}", flush=True)
    d = os.path.join(work, kind)
    os.makedirs(d)
    devices = ""
    for g in GROUPS:
        profile(os.path.join(d, f"{g}.yaml"), g, hz)
        devices += f"  - {{name: dev_{g}, driver: modbus, bus: b, unit: {UNIT}, profile: {g}.yaml}}\n"
    rig = os.path.join(d, "rig.yaml")
    open(rig, "w").write(f"rig: pymodbus-{kind}\nbuses:\n  - {bus_line}\ndevices:\n{devices}")
    p = start_daemon(rig, d)
    chans = channels()
    # Read: every channel shows its encoded value once each has been sampled.
    want = {f"{device_of(t)}.{n}": expected(s, o, raw) for n, t, _, _, _, s, o, raw in chans}
    end = time.monotonic() + 30
    got = {}
    while time.monotonic() < end:
        got = values(d)
        if all(close(got.get(k), v) for k, v in want.items()):
            break
        time.sleep(0.2)     # the next sample is at most 1/hz away; status has no push for values
    for k, v in want.items():
        check(close(got.get(k), v), f"{kind}: read {k} = {got.get(k)} (encoded {v})")
    # Write: every writable channel, then decode what the server holds.
    new = {"u16": 4321, "i16": -32000, "u32": 4294967290, "i32": -2000000000, "f32": 3.75, "bool": None}
    for name, table, addr, typ, order, scale, offset, raw in chans:
        if table not in ("holding", "coil"):
            continue
        if typ == "bool":
            target = 1 - raw
        elif name == "h_f32_scaled":
            target = 9.5          # raw 4.25 with scale 2 and offset 1
        else:
            target = expected(scale, offset, new[typ])
        ch = f"{device_of(table)}.{name}"
        r = ctl(d, "set", ch, repr(target))
        check(r.returncode == 0, f"{kind}: set {ch} {target} accepted ({r.stderr.strip()})")
        fc = 1 if table == "coil" else 3
        n = 2 if typ in FMT else 1

        def held():
            regs = [int(x) for x in store[UNIT].getValues(fc, addr, n)]
            return int(bool(regs[0])) if typ == "bool" else expected(scale, offset, decode(typ, order, regs))
        # The write goes out on the bus thread after set returns: wait (bounded) until it lands.
        with written:
            written.wait_for(lambda: close(held(), target), timeout=10)
            back = held()
        check(close(back, target), f"{kind}: the server holds {back} in {ch} after set {target} ({typ} {order or ''})")
    p.terminate()
    p.wait(timeout=30)


def main():
    # TCP on an ephemeral port of 127.0.0.1.
    written = threading.Condition()
    store = context(written)
    ready = queue.Queue()
    threading.Thread(target=serve, daemon=True, args=(
        lambda: ModbusTcpServer(store, ModbusSocketFramer, None, ("127.0.0.1", 0)), ready)).start()
    server = ready.get(timeout=10)
    if isinstance(server, Exception):
        raise server
    port = server.server.sockets[0].getsockname()[1]
    case("tcp", f"{{name: b, type: modbus-tcp, host: 127.0.0.1, port: {port}}}", store, written, 5)

    # RTU: two ptys bridged; the server opens one end, perfused the other.
    server_path, daemon_path, stop = bridged_ptys()
    written = threading.Condition()
    store = context(written)
    rtu_server(store, server_path, 19200)
    case("rtu", f"{{name: b, type: modbus-rtu, port: {daemon_path}, baud: 19200, parity: N}}", store, written, 1)
    stop.set()
    probe_case()


def probe_case():
    """The shipped dissolved-oxygen probe profile against a pymodbus RTU slave holding
    the probe's register map: 25.3 degC, 8.12 mg/L, 98.5 % saturation."""
    print("# dissolved-oxygen probe profile", flush=True)
    d = os.path.join(work, "probe")
    os.makedirs(d)
    server_path, daemon_path, stop = bridged_ptys()
    slave = ModbusSlaveContext(hr=ModbusSequentialDataBlock(1, [253, 812, 985, 0]), zero_mode=False)
    rtu_server(ModbusServerContext(slaves={1: slave}, single=False), server_path, 9600)
    prof = os.path.abspath(os.path.join(HERE, "..", "..", "protocols", "profiles", "dissolved-oxygen-rs485.yaml"))
    rig = os.path.join(d, "rig.yaml")
    open(rig, "w").write(f"rig: probe\nbuses:\n  - {{name: rs485, type: modbus-rtu, port: {daemon_path}, "
                         f"baud: 9600, parity: N}}\ndevices:\n  - {{name: do1, driver: modbus, bus: rs485, unit: 1, "
                         f"profile: {prof}}}\n")
    p = start_daemon(rig, d)
    want = {"do1.temp": 25.3, "do1.do": 8.12, "do1.saturation": 98.5}
    end, got = time.monotonic() + 20, {}
    while time.monotonic() < end:
        got = values(d)
        if all(close(got.get(k), v) for k, v in want.items()):
            break
        time.sleep(0.2)     # sampled at 1 Hz; status has no push for values
    for k, v in want.items():
        check(close(got.get(k), v), f"probe: {k} = {got.get(k)} (the probe holds {v})")
    p.terminate()
    p.wait(timeout=30)
    stop.set()


try:
    main()
finally:
    stop_all(procs)
print(f"{len(failures)} failures")
sys.exit(1 if failures else 0)
