"""MQTT side of the MQTT tests (paho-mqtt): collect what a rig publishes,
send a command and wait for its reply, and check samples against a run file.

  collect PORT USER PASS CLIENT_ID OUT READY   every message under perfuse/v1/# to OUT
                                               (JSON lines), persistent session, QoS 1;
                                               READY is written once subscribed; until SIGTERM
  retained PORT USER PASS TOPIC                print the retained message of TOPIC (JSON) or nothing
  command PORT USER PASS TOPIC REPLY PAYLOAD V5|V311
                                               publish PAYLOAD, print {"puback": rc, "reply": ...}
  samples OUT RUNFILE [GAP_FROM GAP_TO]        compare; with a gap (wall s), its samples must
                                               have come marked historical
"""
import json
import signal
import sys
import threading
import time

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties


def collect(port, user, pw, cid, out, ready):
    f = open(out, "a", buffering=1)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *a: stop.set())
    c = mqtt.Client(client_id=cid, clean_session=False, protocol=mqtt.MQTTv311)
    c.username_pw_set(user, pw)
    c.reconnect_delay_set(0.1, 0.5)

    def on_connect(cl, ud, flags, rc):
        if rc == 0:
            cl.subscribe("perfuse/v1/#", qos=1)

    def on_subscribe(cl, ud, mid, granted):
        with open(ready, "w") as r:
            r.write("subscribed\n")

    def on_message(cl, ud, m):
        f.write(json.dumps({"topic": m.topic, "retain": bool(m.retain), "at": time.time(),
                            "payload": m.payload.decode("utf-8", "replace")}) + "\n")

    c.on_connect = on_connect
    c.on_subscribe = on_subscribe
    c.on_message = on_message
    c.connect("127.0.0.1", port, keepalive=5)
    c.loop_start()
    stop.wait()
    c.loop_stop()
    f.close()


def retained(port, user, pw, topic):
    got = {}
    done = threading.Event()
    c = mqtt.Client(protocol=mqtt.MQTTv311)
    c.username_pw_set(user, pw)
    c.on_connect = lambda cl, ud, fl, rc: cl.subscribe(topic, qos=1)

    def on_message(cl, ud, m):
        if "m" not in got:      # the first one: a retained message comes before any live one
            got["m"] = {"retain": bool(m.retain), "payload": json.loads(m.payload)}
        done.set()
    c.on_message = on_message
    c.on_subscribe = lambda *a: threading.Timer(1.0, done.set).start()
    c.connect("127.0.0.1", port)
    c.loop_start()
    done.wait(5)
    c.loop_stop()
    if "m" in got:
        print(json.dumps(got["m"]))


def command(port, user, pw, topic, reply_topic, payload, version):
    v5 = version == "V5"
    res = {}
    done = threading.Event()
    subscribed = threading.Event()
    c = mqtt.Client(protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311)
    c.username_pw_set(user, pw)
    corr = b"corr-%d" % int(time.time() * 1000)

    def on_connect(cl, ud, fl, rc, props=None):
        cl.subscribe(reply_topic, qos=1)

    def on_subscribe(cl, ud, mid, *rest):
        subscribed.set()

    def on_message(cl, ud, m):
        r = {"payload": json.loads(m.payload)}
        if v5:
            cd = getattr(m.properties, "CorrelationData", None)
            r["correlation_ok"] = cd == corr
        res["reply"] = r
        done.set()

    def on_publish(cl, ud, mid, *rest):
        pass
    c.on_connect = on_connect
    c.on_subscribe = on_subscribe
    c.on_message = on_message
    if v5:
        # The PUBACK's reason code: 135 is "not authorized".
        def on_puback_log(cl, ud, level, buf):
            if "PUBACK" in buf and "Received" in buf:
                res.setdefault("puback_log", buf)
        c.on_log = on_puback_log
    c.connect("127.0.0.1", port)
    c.loop_start()
    subscribed.wait(5)
    props = None
    if v5:
        props = Properties(PacketTypes.PUBLISH)
        props.CorrelationData = corr
        props.ResponseTopic = reply_topic
    info = c.publish(topic, payload.encode(), qos=1, properties=props) if v5 else \
        c.publish(topic, payload.encode(), qos=1)
    info.wait_for_publish(5)
    done.wait(5)
    c.loop_stop()
    print(json.dumps(res))


def samples(out, runfile, gap=None):
    sys.path.insert(0, "tests/lib")
    from h5run import open_run, series
    import math
    msgs = [json.loads(line) for line in open(out)]
    f = open_run(runfile)
    run_id = f.attrs.get("run_id")
    run_id = run_id.decode() if isinstance(run_id, bytes) else str(run_id)
    got = {}
    seqs = {False: [], True: []}
    hist_in_gap = 0
    live_in_gap = 0
    # The rig whose run this is: only its samples topic counts.
    topic = next(m["topic"] for m in msgs if m["topic"].endswith("/samples")
                 and json.loads(m["payload"])["run"] == run_id)
    for m in msgs:
        if m["topic"] != topic:
            continue
        p = json.loads(m["payload"])
        hist = bool(p.get("historical"))
        seqs[hist].append(p["seq"])
        if p["run"] != run_id:
            continue
        for name, ch in p["channels"].items():
            d = got.setdefault(name, {})
            for t, v in zip(ch["t"], ch["v"]):
                d[t] = v
                if gap is not None and gap[0] + 0.5 <= p["t0"] + t <= gap[1] - 0.5:
                    if hist:
                        hist_in_gap += 1
                    else:
                        live_in_gap += 1
    problems = []
    all_seq = sorted(set(seqs[False] + seqs[True]))
    if all_seq and all_seq != list(range(all_seq[0], all_seq[-1] + 1)):
        missing = sorted(set(range(all_seq[0], all_seq[-1] + 1)) - set(all_seq))
        problems.append(f"samples messages missing: seq {missing[:10]}")
    n_values = 0
    for name in f["channels"]:
        t, v = series(f, "channels", name)
        d = got.get(name, {})
        # A counter (a pump's dispensed) is published as the device reads it and
        # stored from the run's start: less the reading there, it is the same double.
        raw = f["channels"][name].attrs.get("counter_at_start")
        if raw is not None:
            d = {k: (None if x is None else x - float(raw)) for k, x in d.items()}
        if len(t) != len(d):
            problems.append(f"{name}: {len(t)} samples in the file, {len(d)} over MQTT")
        for ti, vi in zip(t, v):
            ti = float(ti)
            if ti not in d:
                problems.append(f"{name}: t={ti} not received")
                break
            mv = d[ti]
            if (mv is None) != math.isnan(float(vi)) or (mv is not None and mv != float(vi)):
                problems.append(f"{name}: t={ti} file {vi} mqtt {mv}")
                break
            n_values += 1
    print(json.dumps({"values": n_values, "channels": len(got), "messages": len(all_seq),
                      "historical_messages": len(seqs[True]), "hist_in_gap": hist_in_gap,
                      "live_in_gap": live_in_gap, "problems": problems[:20]}))


if __name__ == "__main__":
    a = sys.argv[1:]
    if a[0] == "collect":
        collect(int(a[1]), a[2], a[3], a[4], a[5], a[6])
    elif a[0] == "retained":
        retained(int(a[1]), a[2], a[3], a[4])
    elif a[0] == "command":
        command(int(a[1]), a[2], a[3], a[4], a[5], a[6], a[7])
    elif a[0] == "samples":
        samples(a[1], a[2], (float(a[3]), float(a[4])) if len(a) > 4 else None)
