#!/usr/bin/python3
"""perfuse-sim against third-party masters (mbpoll, pymodbus), not perfuse's drivers.

Checks register values against the physics (pressure = R x flow + p0 within
noise) and shows every fault kind's effect on the wire. Usage:
sim_peers.py BUILD_DIR WORK_DIR. Prints "N passed, N failed".
"""
import json
import os
import select
import signal
import socket
import subprocess
import sys
import termios
import time
import tty

from pymodbus.client import ModbusSerialClient, ModbusTcpClient

BUILD, WORK = sys.argv[1], sys.argv[2]
R1, P0, NOISE = 2.5, 4.0, 0.3          # drivers/sim/physics.c
passed = failed = 0


def check(cond, what):
    global passed, failed
    if cond:
        passed += 1
        print("ok -", what)
    else:
        failed += 1
        print("not ok -", what)


def start_sim():
    rig = os.path.join(WORK, "rig.yaml")
    p = subprocess.Popen([os.path.join(BUILD, "perfuse-sim"), "--seed", "7", "--rig-out", rig],
                         stdout=subprocess.PIPE, text=True)
    ready, _, _ = select.select([p.stdout], [], [], 10)
    if not ready:
        p.kill()
        sys.exit("perfuse-sim did not report ready")
    return p, json.loads(p.stdout.readline())


def mbpoll(*args, timeout=5):
    r = subprocess.run(["mbpoll", "-1", "-o", "0.5"] + list(args), capture_output=True, text=True,
                       timeout=timeout)
    return r.returncode, r.stdout + r.stderr


def mbpoll_value(out):
    for line in out.splitlines():
        if line.startswith("[") and "]:" in line:
            return line.split("]:", 1)[1].strip()
    return None


def control(path, cmd):
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(5)
        s.connect(path)
        s.sendall((cmd + "\n").encode())
        data = b""
        while not data.endswith(b"\n"):
            data += s.recv(4096)
        return data.decode().strip()


class PumpLine:
    """The New Era line, spoken to directly over the pty."""

    def __init__(self, path):
        self.fd = os.open(path, os.O_RDWR | os.O_NOCTTY)
        tty.setraw(self.fd)

    def ask(self, cmd, wait=0.5):
        termios.tcflush(self.fd, termios.TCIFLUSH)
        os.write(self.fd, (cmd + "\r").encode())
        out = b""
        end = time.monotonic() + wait
        while time.monotonic() < end:
            r, _, _ = select.select([self.fd], [], [], end - time.monotonic())
            if not r:
                break
            out += os.read(self.fd, 256)
            if out.endswith(b"\x03"):
                break
        return out


def main():
    sim, ep = start_sim()
    try:
        run_checks(sim, ep)
    finally:
        sim.send_signal(signal.SIGTERM)
        try:
            sim.wait(5)
        except subprocess.TimeoutExpired:
            sim.kill()
    check(not os.path.exists(ep["rig_file"]), "perfuse-sim removes its rig file on SIGTERM")
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


def run_checks(sim, ep):
    sensors, pumps, ctl = ep["buses"]["sensors"], ep["buses"]["pumps"], ep["control"]
    host, port = ep["buses"]["plc"].split(":")
    rtu = ["-m", "rtu", "-b", "19200", "-P", "none"]
    tcp = ["-m", "tcp", "-p", port]

    # --- mbpoll: registers over RTU (pty) and TCP
    rc, out = mbpoll(*rtu, "-a", "1", "-t", "3:float", "-B", "-r", "1", sensors)
    v = mbpoll_value(out)
    check(rc == 0 and v is not None and abs(float(v) - P0) < 5 * NOISE,
          f"mbpoll reads chip1 pressure over RTU at rest: {v} mbar ~ p0 = {P0}")
    rc, out = mbpoll(*tcp, "-a", "2", "-t", "3", "-r", "1", host)
    v = mbpoll_value(out)
    check(rc == 0 and v is not None and 300 <= int(v) <= 400,
          f"mbpoll reads the incubator temperature over TCP: {v} x 0.1 degC")
    rc, out = mbpoll(*tcp, "-a", "1", "-t", "4", "-r", "1", host, "3")
    check(rc == 0, "mbpoll writes valve1 position 3 over TCP")
    time.sleep(0.4)   # the valve takes 300 ms to move (physics time, not synchronisation)
    rc, out = mbpoll(*tcp, "-a", "1", "-t", "4", "-r", "1", host)
    check(mbpoll_value(out) == "3", f"the valve reads back the position written ({mbpoll_value(out)})")
    rc, out = mbpoll(*tcp, "-a", "1", "-t", "4", "-r", "1", host, "9")
    check(rc != 0 and "Illegal data value" in out, "an out-of-range valve port is a Modbus exception")

    # --- pump flow set over the pump line, pressure read with pymodbus against R x flow + p0
    line = PumpLine(pumps)
    check(line.ask("0VER").startswith(b"\x0200S"), "the pump answers VER")
    line.ask("0RAT 20.00UM")
    check(line.ask("0RUN") == b"\x0200I\x03", "RUN starts the pump (prompt I)")
    time.sleep(8)     # five time constants of the chip's flow and pressure lags
    mb = ModbusSerialClient(port=sensors, baudrate=19200, timeout=1)
    check(mb.connect(), "pymodbus opens the RTU pty")
    import struct
    def read_f32(unit, addr):
        r = mb.read_input_registers(addr, 2, slave=unit)
        if r.isError():
            return None
        return struct.unpack(">f", struct.pack(">HH", *r.registers))[0]
    p, q = read_f32(1, 0), read_f32(1, 2)
    check(p is not None and abs(p - (R1 * 20 + P0)) < 5 * NOISE + 0.5,
          f"pymodbus: chip1 pressure {p:.2f} at 20 uL/min is R x flow + p0 = {R1 * 20 + P0}")
    check(q is not None and abs(q - 20) < 0.6, f"pymodbus: chip1 flow {q:.2f} uL/min")
    tc = ModbusTcpClient(host, port=int(port), timeout=1)
    check(tc.connect(), "pymodbus connects over TCP")
    r = tc.read_input_registers(0, 1, slave=2)
    check(not r.isError() and 300 <= r.registers[0] <= 400, "pymodbus reads the incubator over TCP")
    tc.close()

    # --- every fault kind on the wire
    def fault(spec):
        return control(ctl, "fault " + spec)

    check(fault("bogus:chip1").startswith("error: unknown fault kind"), "a bad fault spec is refused")
    check(fault("crc:valve1").startswith("error: fault 'crc' does not apply"), "crc on TCP is refused")
    fault("timeout:chip1")
    rc, out = mbpoll(*rtu, "-a", "1", "-t", "3:float", "-B", "-r", "1", sensors)
    check(rc != 0 and "timed out" in out.lower(), "timeout: chip1 is silent (mbpoll times out)")
    rc, out = mbpoll(*rtu, "-a", "2", "-t", "3:float", "-B", "-r", "1", sensors)
    check(rc == 0, "timeout: chip2 on the same line still answers")
    control(ctl, "clear chip1")
    fault("crc:chip1")
    rc, out = mbpoll(*rtu, "-a", "1", "-t", "3:float", "-B", "-r", "1", sensors)
    check(rc != 0 and "crc" in out.lower(), "crc: the master's CRC check fails")
    control(ctl, "clear chip1")
    fault("exception:chip1")
    rc, out = mbpoll(*rtu, "-a", "1", "-t", "3:float", "-B", "-r", "1", sensors)
    check(rc != 0 and "failure" in out.lower(), "exception: Modbus exception 4 (slave device failure)")
    control(ctl, "clear chip1")
    fault("garbage:chip1")
    rc, out = mbpoll(*rtu, "-a", "1", "-t", "3:float", "-B", "-r", "1", sensors)
    check(rc != 0, "garbage: the master rejects the reply")
    control(ctl, "clear chip1")
    # At the line's rate the rest of the junk may still be arriving after
    # mbpoll gave up, as on a real line: read until a clean reply comes.
    clean = any(read_f32(1, 0) is not None for _ in range(5))
    check(clean, "garbage over: chip1 answers cleanly again")
    fault("nan:chip1")
    v = read_f32(1, 0)
    check(v is not None and v != v, f"nan: the pressure register holds NaN ({v})")
    control(ctl, "clear chip1")
    fault("stuck:chip1")
    a = read_f32(1, 0)
    time.sleep(0.3)
    b = read_f32(1, 0)
    check(a is not None and a == b, f"stuck: the pressure stays at {a}")
    control(ctl, "clear chip1")
    fault("bubble:chip1")
    q = read_f32(1, 2)
    check(q is not None and abs(q - 0.4 * 20) < 1.0, f"bubble: the flow reads {q:.2f}, 40 % of 20")
    control(ctl, "clear chip1")
    fault("clog:chip1")
    time.sleep(8)
    p = read_f32(1, 0)
    check(p is not None and abs(p - (5 * R1 * 20 + P0)) < 3, f"clog: pressure rises to {p:.1f} (5 x R x flow + p0)")
    control(ctl, "clear chip1")
    mb.close()
    fault("disconnect:chip1")
    time.sleep(0.2)
    check(not os.path.exists(sensors), "disconnect: the sensor line goes away")
    control(ctl, "clear chip1")
    time.sleep(0.2)
    rc, out = mbpoll(*rtu, "-a", "1", "-t", "3:float", "-B", "-r", "1", sensors)
    check(rc == 0, "disconnect: the sensor line comes back at the same path")
    fault("disconnect:valve1")
    time.sleep(0.2)
    try:
        socket.create_connection((host, int(port)), timeout=1).close()
        refused = False
    except OSError:
        refused = True
    check(refused, "disconnect: the TCP server refuses connections")
    control(ctl, "clear valve1")
    time.sleep(0.2)
    rc, out = mbpoll(*tcp, "-a", "2", "-t", "3", "-r", "1", host)
    check(rc == 0, "disconnect: the TCP server is back on the same port")
    fault("timeout:incubator")
    rc, out = mbpoll(*tcp, "-a", "2", "-t", "3", "-r", "1", host)
    check(rc != 0 and "timed out" in out.lower(), "timeout over TCP: the incubator is silent")
    control(ctl, "clear all")
    fault("garbage:pump1")
    reply = line.ask("0RAT")
    check(len(reply) > 0 and not reply.startswith(b"\x0200"), f"garbage: the pump's reply is junk ({reply!r})")
    control(ctl, "clear pump1")
    fault("exception:pump1")
    check(line.ask("0RAT").endswith(b"?NA\x03"), "exception: the pump answers ?NA")
    control(ctl, "clear pump1")
    fault("timeout:pump1")
    check(line.ask("0RAT") == b"", "timeout: the pump is silent")
    control(ctl, "clear pump1")
    fault("syringe-empty:pump1")
    check(line.ask("0RAT") == b"\x0200A?S\x03", "syringe-empty: the pump stalls and answers A?S")
    check(line.ask("0RAT").startswith(b"\x0200S"), "after the alarm the pump is stopped (prompt S)")
    lst = control(ctl, "list")
    check(lst.endswith("ok"), "list answers")


if __name__ == "__main__":
    main()
