"""The web dashboard in headless Chromium (Selenium) against scripts/dashboard's
set-up: an operator sees values change, plots drawn and the step advance,
pauses from the page (recorded with the MQTT user), sees a tripped limit's
alarm within 2 s and acks it; a viewer has no action buttons and a command
published by hand from the viewer's account changes nothing.

usage: dashboard.py SETUP_JSON SHOT_DIR
Prints "ok - ..." / "not ok - ..." lines; the shell suite counts them.
"""
import json
import os
import signal
import socket
import sys
import time

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from selenium import webdriver
from selenium.common.exceptions import TimeoutException, WebDriverException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

cfg = json.load(open(sys.argv[1]))
shots = sys.argv[2]
os.makedirs(shots, exist_ok=True)
failures = 0


def ok(cond, what):
    global failures
    print(("ok - " if cond else "not ok - ") + what, flush=True)
    if not cond:
        failures += 1
    return cond


def daemon(req):
    """One request on perfused's control socket; its reply."""
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(10)
    s.connect(cfg["socket"])
    s.sendall((json.dumps(req) + "\n").encode())
    f = s.makefile("rb")
    try:
        for line in f:   # the greeting comes first, then the reply
            m = json.loads(line)
            if "ok" in m:
                return m
    finally:
        f.close()
        s.close()
    return {"ok": False}


def sim(line):
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(5)
    s.connect(cfg["sim_control"])
    s.sendall((line + "\n").encode())
    r = s.recv(4096).decode().strip()
    s.close()
    return r


def wait(drv, what, fn, timeout=10):
    """Wait (bounded) until fn(drv) is true; False on time-out."""
    try:
        WebDriverWait(drv, timeout, poll_frequency=0.1).until(lambda d: fn(d))
        return True
    except TimeoutException:
        print("# timed out waiting for: " + what, flush=True)
        return False


def js(drv, code, *args):
    return drv.execute_script(code, *args)


def browser():
    o = Options()
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
              "--window-size=1280,800", "--hide-scrollbars"):
        o.add_argument(a)
    o.binary_location = "/usr/bin/chromium"
    o.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    d = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=o)
    d.set_page_load_timeout(15)
    d.set_script_timeout(10)
    viewport(d, 1280, 800)
    return d


def viewport(d, w, h):
    d.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                      {"width": w, "height": h, "deviceScaleFactor": 1, "mobile": False})


def login(d, user, pw, load=True):
    if load:
        d.get(cfg["url"])
    wait(d, "the login form", lambda d: d.find_element(By.ID, "login-user").is_displayed())
    u = d.find_element(By.ID, "login-user")
    u.clear()
    u.send_keys(user)
    d.find_element(By.ID, "login-pass").send_keys(pw)
    d.find_element(By.ID, "login-submit").click()
    return wait(d, "connected", lambda d: d.find_element(By.ID, "conn").text == "connected")


def pointer_away(d):
    """Park the pointer on the top bar, so that no plot is held."""
    ActionChains(d).move_to_element_with_offset(d.find_element(By.CLASS_NAME, "brand"), 0, 0).perform()


def shot(d, name, full=False):
    path = os.path.join(shots, name)
    js(d, "document.getElementById('toasts').textContent = ''")   # what they say is checked, not shown
    if full:
        h = js(d, "return document.documentElement.scrollHeight")
        w = js(d, "return window.innerWidth")
        viewport(d, w, max(800, h))
        time.sleep(0.3)   # a layout pass and a plot redraw at the new size
        d.save_screenshot(path)
        viewport(d, w, 800)
    else:
        d.save_screenshot(path)
    print("# screenshot: " + path, flush=True)
    return path


COLORED = """
// Pixels of a saturated colour (the series' strokes; the grid and axes are grey)
// in each panel's plot canvas.
return [...document.querySelectorAll('#plots .panel canvas')].map((c) => {
  const x = c.getContext('2d');
  const d = x.getImageData(0, 0, c.width, c.height).data;
  let n = 0;
  for (let i = 0; i < d.length; i += 4) {
    const mx = Math.max(d[i], d[i + 1], d[i + 2]), mn = Math.min(d[i], d[i + 1], d[i + 2]);
    if (d[i + 3] > 0 && mx - mn > 60) n++;
  }
  return [c.closest('.panel').dataset.unit, n];
});
"""


def values(d):
    """The channel table's value column (not the ages, which move by themselves)."""
    return js(d, "return [...document.querySelectorAll('#channels .ch-val')].map((e) => e.textContent)")


def run_state(d):
    els = d.find_elements(By.CSS_SELECTOR, "#runs .run .run-state")
    return els[0].text if els else ""


def progress(d):
    els = d.find_elements(By.CSS_SELECTOR, "#runs .run .progress")
    return float(els[0].get_attribute("aria-valuenow") or 0) if els else -1.0


def visible_actions(d):
    return [b.text for b in d.find_elements(By.CSS_SELECTOR, "button.act") if b.is_displayed()]


def ask_reason_and_send(d, button_css, reason):
    d.find_element(By.CSS_SELECTOR, button_css).click()
    if not wait(d, "the reason dialog", lambda d: d.find_element(By.ID, "reason-dialog").is_displayed(), 5):
        return False
    d.find_element(By.ID, "reason-text").send_keys(reason)
    d.find_element(By.ID, "reason-ok").click()
    return True


def main():
    # SIGTERM (the suite's timeout) ends through the finally below, which quits the browser.
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(143))
    site, rig = cfg["site"], cfg["rig"]
    d = browser()
    try:
        # --- a wrong password: the broker refuses, the page says so ---
        d.get(cfg["url"])
        d.find_element(By.ID, "login-user").send_keys(cfg["operator"]["user"])
        d.find_element(By.ID, "login-pass").send_keys("not-the-password")
        d.find_element(By.ID, "login-submit").click()
        ok(wait(d, "the login error", lambda d: "refused" in d.find_element(By.ID, "login-error").text, 5),
           "a wrong password: the page says the broker refused the login")
        print("# " + d.find_element(By.ID, "login-error").text, flush=True)

        # --- the operator ---
        ok(login(d, cfg["operator"]["user"], cfg["operator"]["password"]), "operator logs in through the page")
        ok(wait(d, "the rig's card", lambda d: "running" in d.find_element(By.ID, "rig-grid").text and
                "online" in d.find_element(By.ID, "rig-grid").text),
           "facility view: the rig is listed online, running")
        ok(wait(d, "every rig", lambda d: sorted(e.text for e in d.find_elements(By.CSS_SELECTOR, ".rig-card a.rig-name"))
                == sorted(cfg["rigs"]), 5), "facility view: every rig on the broker is listed (%s)" % " ".join(cfg["rigs"]))
        card = d.find_element(By.CSS_SELECTOR, ".rig-card[aria-label='rig %s']" % rig).text
        ok("step 1 flow" in card and "ETA" in card, "facility view: the run's step, progress and ETA are shown")
        shot(d, "dashboard-facility.png")

        d.find_element(By.LINK_TEXT, rig).click()
        pointer_away(d)
        ok(wait(d, "operator rights", lambda d: d.find_element(By.ID, "rig-role").text == "operator rights"),
           "rig view: the page found this account has operator rights")
        ok(wait(d, "channel rows", lambda d: len(d.find_elements(By.CSS_SELECTOR, "#channels tr")) > 5),
           "rig view: the channel table is filled")
        ok(wait(d, "the run's start in the feed", lambda d: "run_started: protocol 'dashboard test' started"
                in d.find_element(By.ID, "events").text, 8),
           "rig view: the event feed has the run's events from before the page opened (its start)")
        first = values(d)
        ok(wait(d, "a value change", lambda d: values(d) != first, 5), "the values change")
        row = [r.text for r in d.find_elements(By.CSS_SELECTOR, "#channels tr") if r.text.startswith("chip1.pressure")]
        print("# " + (row[0] if row else "no chip1.pressure row"), flush=True)

        # Plots: every panel's canvas has coloured pixels (lines) once a few samples came.
        p0 = progress(d)
        drawn = []
        wait(d, "lines in every panel", lambda d: (drawn.__setitem__(slice(None), js(d, COLORED)) or True) and
             len(drawn) >= 3 and all(n > 30 for _, n in drawn), 8)
        print("# coloured pixels per panel: " + ", ".join("%s %d" % (u or "(no unit)", n) for u, n in drawn), flush=True)
        ok(len(drawn) >= 3 and all(n > 30 for _, n in drawn), "the plot canvases are drawn (%d panels, none blank)" % len(drawn))
        ok(wait(d, "progress", lambda d: progress(d) > p0, 5), "the step progress advances (%.1f %% -> %.1f %%)" % (p0, progress(d)))
        ok(d.find_element(By.CSS_SELECTOR, "#runs .run .run-step").text.startswith("Step "), "the step path is shown")

        # Pause on hover: a panel under the pointer is held still, and moves on when it leaves.
        panel = d.find_elements(By.CSS_SELECTOR, "#plots .panel")[0]
        ActionChains(d).move_to_element(panel.find_element(By.CSS_SELECTOR, ".panel-plot")).perform()
        ok(wait(d, "held", lambda d: "held" in panel.get_attribute("class"), 3), "a panel under the pointer is held")
        pic = "return document.querySelector('#plots .panel canvas').toDataURL()"
        held = js(d, pic)
        time.sleep(2.2)   # two redraws of the page's one-second clock
        ok(js(d, pic) == held, "  ... its plot does not move while held")
        pointer_away(d)
        ok(wait(d, "moving", lambda d: js(d, pic) != held, 3), "  ... and moves on when the pointer leaves")

        # The connection drops: the page says so and reconnects by itself.
        js(d, "window.perfuseDashboard.conn.client.stream.destroy()")
        ok(wait(d, "the banner", lambda d: d.find_element(By.ID, "banner").is_displayed(), 3),
           "a dropped connection is shown (banner)")
        # An event while the page is offline (it reconnects after 2 s; the rig publishes every 0.5 s).
        daemon({"cmd": "note", "text": "written while the page was offline"})
        print("# " + d.find_element(By.ID, "banner").text, flush=True)
        ok(wait(d, "reconnected", lambda d: d.find_element(By.ID, "conn").text == "connected" and
                not d.find_element(By.ID, "banner").is_displayed(), 10), "the page reconnects by itself")
        again = values(d)
        ok(wait(d, "a value change", lambda d: values(d) != again, 5), "  ... and the values move again")
        ok(wait(d, "the note in the feed", lambda d: "note: written while the page was offline"
                in d.find_element(By.ID, "events").text, 8),
           "  ... and its event feed has the event published while it was offline")

        # Pause from the page, with a reason; then resume.
        # ... with the keyboard only: Enter on the button, the reason typed, Tab to Send, Enter.
        d.find_element(By.CSS_SELECTOR, "#runs .run .run-pause").send_keys(Keys.ENTER)
        ok(wait(d, "the reason dialog", lambda d: d.find_element(By.ID, "reason-dialog").is_displayed(), 5) and
           d.switch_to.active_element.get_attribute("id") == "reason-text",
           "pause asks for a reason (keyboard: the reason field has the focus)")
        d.switch_to.active_element.send_keys("bubble seen in line 2 (dashboard test)", Keys.TAB, Keys.TAB)
        ok(d.switch_to.active_element.get_attribute("id") == "reason-ok", "  ... Tab reaches Send")
        d.switch_to.active_element.send_keys(Keys.ENTER)
        ok(wait(d, "paused", lambda d: run_state(d) == "paused", 5), "the run pauses from the page")
        ok(daemon({"cmd": "status"})["result"]["state"] == "paused", "  ... perfused says paused")
        ok(wait(d, "the pause reason", lambda d: "bubble seen" in d.find_element(By.ID, "runs").text, 5),
           "the pause reason is shown")
        ok(ask_reason_and_send(d, "#runs .run .run-resume", "line cleared (dashboard test)"), "resume asks for a reason")
        ok(wait(d, "running", lambda d: run_state(d) == "running", 5), "the run resumes from the page")

        # Trip the rig limit on chip1.pressure: clog chip1 in the simulator.
        ok(sim("fault clog:chip1") == "ok", "the simulator's chip1 clogs")
        t_daemon = t_page = None
        deadline = time.time() + 20
        while time.time() < deadline and t_page is None:
            now = time.time()
            if t_daemon is None:
                st = daemon({"cmd": "status"})["result"]
                if any("chip1.pressure" in a["message"] and a["state"] == "active" for a in st.get("alarms", [])):
                    t_daemon = now
            if "chip1.pressure" in d.find_element(By.ID, "alarms").text:
                t_page = time.time()
            time.sleep(0.05)
        if t_daemon is not None and t_page is not None:
            print("# alarm: raised by perfused at +0, on the page at +%.2f s" % (t_page - t_daemon), flush=True)
        ok(t_daemon is not None, "perfused raises the limit's alarm")
        ok(t_page is not None and t_daemon is not None and t_page - t_daemon <= 2.0,
           "the alarm is on the page within 2 s")
        limit_row = "//tbody[@id='alarms']/tr[contains(., 'chip1.pressure')]"
        ok(wait(d, "ack button", lambda d: d.find_element(By.XPATH, limit_row + "//button").is_displayed(), 3),
           "the alarm has an Ack button")
        d.find_element(By.XPATH, limit_row + "//button").click()
        acked = wait(d, "acknowledged", lambda d: "acknowledged" in d.find_element(By.XPATH, limit_row).text, 5)
        al = [a for a in daemon({"cmd": "status"})["result"].get("alarms", []) if "chip1.pressure" in a["message"]]
        print("# alarm after ack: %s" % json.dumps(al[:1]), flush=True)
        ok(acked and al and al[0]["state"] == "acknowledged", "the alarm is acknowledged from the page")
        time.sleep(1.2)   # one plot redraw with the alarm span (the page redraws every second)
        pointer_away(d)
        shot(d, "dashboard-rig.png")
        shot(d, "dashboard-rig-full.png", full=True)
        viewport(d, 768, 1024)
        time.sleep(1.2)
        shot(d, "dashboard-rig-768.png")
        wide = js(d, "return document.documentElement.scrollWidth")
        ok(wide <= 768, "at 768 px wide nothing overflows sideways (page width %d)" % wide)
        viewport(d, 1280, 800)

        # The facility view lists the rig's alarm while its condition holds.
        d.find_element(By.CSS_SELECTOR, "a.brand").click()
        ok(wait(d, "the alarm in the facility", lambda d: "limit_max" in d.find_element(
            By.CSS_SELECTOR, ".rig-card[aria-label='rig %s'] .alarms" % rig).text, 5),
           "facility view: the rig's alarm is listed")
        shot(d, "dashboard-facility-alarm.png")
        d.find_element(By.LINK_TEXT, rig).click()
        pointer_away(d)
        sim("clear chip1")

        # Every control has a label a screen reader reads.
        unlabelled = js(d, """
return [...document.querySelectorAll('button, select, input, textarea')].filter((e) => {
  if (e.offsetParent === null && e.type !== 'hidden' && !e.closest('dialog')) return false;
  const name = (e.getAttribute('aria-label') || e.textContent || '').trim();
  const lab = e.id && document.querySelector('label[for="' + e.id + '"]');
  return !name && !lab && !e.closest('label');
}).map((e) => e.outerHTML.slice(0, 80));""")
        ok(not unlabelled, "every control has a label %s" % (unlabelled or ""))

        # A prompt: the page shows it with Confirm, and Confirm answers it.
        ok(daemon({"cmd": "next"}).get("ok"), "the run skips to its prompt step (perfusectl next)")
        ok(wait(d, "the prompt", lambda d: d.find_element(By.ID, "prompt").is_displayed() and
                "Replace the media reservoir" in d.find_element(By.ID, "prompt").text, 5),
           "the waiting prompt is shown with its text")
        ok(d.find_element(By.ID, "confirm-btn").is_displayed(), "  ... with a Confirm button")
        d.find_element(By.ID, "confirm-btn").click()
        ok(wait(d, "step 3", lambda d: not d.find_element(By.ID, "prompt").is_displayed() and
                "Step 3" in d.find_element(By.CSS_SELECTOR, "#runs .run .run-step").text, 5),
           "Confirm answers it: the run goes on to step 3")

        # --- the viewer ---
        d.find_element(By.ID, "logout").click()
        js(d, "location.hash = arguments[0]", "#/rig/%s/%s" % (site, rig))
        ok(login(d, cfg["viewer"]["user"], cfg["viewer"]["password"], load=False), "viewer logs in")
        pointer_away(d)
        ok(wait(d, "viewer", lambda d: d.find_element(By.ID, "rig-role").text == "viewer: read only"),
           "the page found the viewer has no operator rights")
        ok(wait(d, "channel rows", lambda d: len(d.find_elements(By.CSS_SELECTOR, "#channels tr")) > 5), "the viewer sees the channels")
        ok(wait(d, "the viewer's plots", lambda d: all(n > 30 for _, n in js(d, COLORED)), 6),
           "the viewer's plots are drawn")
        acts = visible_actions(d)
        ok(not acts, "the viewer has no action buttons %s" % (acts or ""))
        shot(d, "dashboard-rig-viewer.png")

        # A rig whose perfused stops shows offline in the facility view.
        others = [r for r in cfg["rigs"] if r != rig]
        if others:
            d.find_element(By.CSS_SELECTOR, "a.brand").click()
            os.kill(cfg["daemon_pids"][others[0]], signal.SIGTERM)
            ok(wait(d, "offline", lambda d: "offline" in d.find_element(
                By.CSS_SELECTOR, ".rig-card[aria-label='rig %s'] .conn-pill" % others[0]).text, 10),
               "a rig whose perfused stopped is shown offline (%s)" % others[0])
            st = d.find_element(By.CSS_SELECTOR, ".rig-card[aria-label='rig %s'] .state-pill" % others[0]).text
            ok(st.startswith("last known:"), "  ... its state is shown as the last known one (%r)" % st)
            shot(d, "dashboard-facility-offline.png")
    except WebDriverException as e:
        ok(False, "the browser test ran through (%s)" % str(e).splitlines()[0])
    finally:
        for e in d.get_log("browser"):
            if e.get("level") == "SEVERE":
                print("# browser: %s" % e.get("message"), flush=True)
        d.quit()

    # A command published by hand from the viewer's account: the broker refuses it.
    st0 = daemon({"cmd": "status"})["result"]["state"]
    rc = viewer_publish(site, rig, {"cmd": "pause", "reason": "viewer by hand"})
    print("# viewer's publish to cmd/viewer: PUBACK reason %s" % rc, flush=True)
    ok(rc == 135, "the broker refuses the viewer's command (PUBACK 135, not authorized)")
    ok(daemon({"cmd": "status"})["result"]["state"] == st0 == "running", "  ... and the run goes on (%s)" % st0)
    return failures


def viewer_publish(site, rig, req):
    """Publish REQ on cmd/viewer as the viewer (MQTT 5); the PUBACK's reason code."""
    got = {}
    orig = mqtt.Client._handle_pubackcomp

    def grab(self, cmd):
        pk = self._in_packet["packet"]
        got["rc"] = pk[2] if len(pk) > 2 else 0
        return orig(self, cmd)
    mqtt.Client._handle_pubackcomp = grab
    try:
        c = mqtt.Client(protocol=mqtt.MQTTv5)
        c.username_pw_set(cfg["viewer"]["user"], cfg["viewer"]["password"])
        c.connect("127.0.0.1", cfg["mqtt_port"])
        c.loop_start()
        props = Properties(PacketTypes.PUBLISH)
        props.CorrelationData = b"by-hand"
        info = c.publish("perfuse/v1/%s/%s/cmd/viewer" % (site, rig), json.dumps(req).encode(), qos=1, properties=props)
        info.wait_for_publish(5)
        c.loop_stop()
        c.disconnect()
    finally:
        mqtt.Client._handle_pubackcomp = orig
    return got.get("rc")


if __name__ == "__main__":
    sys.exit(1 if main() else 0)
