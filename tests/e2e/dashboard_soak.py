"""make soak-dashboard: the dashboard page for a long time against a rig of 64
channels at 10 Hz (scripts/dashboard --rig64), in headless Chromium. Every
minute the page's JavaScript heap is measured through the DevTools protocol
(after a garbage collection, HeapProfiler.collectGarbage then
Runtime.getHeapUsage; Performance.getMetrics for the DOM nodes and listeners),
and at the end the figures and their trend (least-squares slope after one window,
while the page's buckets fill) are printed.
Figures, not assertions: it fails only if the set-up or the page breaks.

usage: dashboard_soak.py [--minutes N] [--window SECONDS]
"""
import argparse
import json
import os
import signal
import subprocess
import sys
import time

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

BUILD = os.environ.get("BUILD", "build")


def slope(xs, ys):
    n = len(xs)
    if n < 2:
        return 0.0
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx if sxx else 0.0


def main():
    # SIGTERM (make's, timeout's) ends through the finally below: browser and set-up stopped.
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(143))
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=30)
    ap.add_argument("--window", type=int, default=300,
                    help="the plots' window (300 to 3600 s); the page's buckets fill over one window")
    a = ap.parse_args()
    os.chdir(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
    setup = subprocess.Popen(["scripts/dashboard", "--json", "--rig64", "--no-demo"],
                             stdout=subprocess.PIPE, stderr=sys.stderr, text=True)
    d = None
    try:
        line = setup.stdout.readline()   # one line once everything is up (or EOF if it failed)
        if not line:
            print("soak-dashboard: scripts/dashboard did not set up", file=sys.stderr)
            return 1
        cfg = json.loads(line)
        o = Options()
        for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--window-size=1280,800"):
            o.add_argument(arg)
        o.binary_location = "/usr/bin/chromium"
        d = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=o)
        d.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                          {"width": 1280, "height": 800, "deviceScaleFactor": 1, "mobile": False})
        d.get(cfg["url"] + "#/rig/%s/%s" % (cfg["site"], cfg["rig"]))
        d.find_element(By.ID, "login-user").send_keys(cfg["operator"]["user"])
        d.find_element(By.ID, "login-pass").send_keys(cfg["operator"]["password"])
        d.find_element(By.ID, "login-submit").click()
        WebDriverWait(d, 15).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#channels tr")) >= 64)
        Select(d.find_element(By.ID, "window")).select_by_value(str(a.window))
        # The chosen option leaves the pointer over the first plot, which would
        # then hold still: the soak is of a page whose plots all move.
        ActionChains(d).move_to_element(d.find_element(By.TAG_NAME, "header")).perform()
        d.execute_cdp_cmd("Performance.enable", {})
        print("soak-dashboard: %d channels at 10 Hz, plot window %d s, %.0f min; the page's heap "
              "after a garbage collection, each minute" % (
                  len(d.find_elements(By.CSS_SELECTOR, "#channels tr")), a.window, a.minutes), flush=True)
        print("%6s %10s %10s %8s %10s %12s %10s %8s" % ("minute", "heap MB", "total MB", "nodes",
                                                        "listeners", "samples/s", "ring MB", "plots"), flush=True)
        t0 = time.time()
        rows = []
        last_seen, last_t = None, None
        k = 0
        while True:
            target = t0 + 60 * k
            while time.time() < target:
                time.sleep(min(5, target - time.time()))
            d.execute_cdp_cmd("HeapProfiler.collectGarbage", {})
            hu = d.execute_cdp_cmd("Runtime.getHeapUsage", {})
            pm = {m["name"]: m["value"] for m in d.execute_cdp_cmd("Performance.getMetrics", {})["metrics"]}
            page = d.execute_script("""
const v = window.perfuseDashboard.rigView;
let ring = 0;
if (v) { for (const s of v.live.series.values()) ring += s.ring.bytes();
         for (const r of v.live.setpoints.values()) ring += r.bytes(); }
// Panels whose plot holds points now, and how many there are.
let drawn = 0, panels = 0;
if (v) for (const p of v.plots.panels.values()) {
  panels++;
  if (p.u.data.slice(1).some((ys) => ys.some((y) => y != null))) drawn++;
}
return {seen: v ? v.live.samplesSeen : 0, ring, drawn, panels,
        conn: document.getElementById('conn').textContent};""")
            now = time.time()
            rate = (page["seen"] - last_seen) / (now - last_t) if last_seen is not None else float("nan")
            last_seen, last_t = page["seen"], now
            rows.append(((now - t0) / 60, hu["usedSize"] / 1e6))
            print("%6d %10.2f %10.2f %8d %10d %12.0f %10.2f %8s%s" % (
                k, hu["usedSize"] / 1e6, hu["totalSize"] / 1e6, pm.get("Nodes", 0),
                pm.get("JSEventListeners", 0), rate, page["ring"] / 1e6,
                "%d/%d" % (page["drawn"], page["panels"]),
                "" if page["conn"] == "connected" else "  (" + page["conn"] + ")"), flush=True)
            if k >= a.minutes:
                break
            k += 1
        os.makedirs(os.path.join(BUILD, "e2e"), exist_ok=True)
        shot = os.path.join(BUILD, "e2e", "dashboard-soak.png")
        d.save_screenshot(shot)
        print("screenshot: " + shot, flush=True)
        # The trend after the warm-up: the page's buckets fill over one window.
        warm_min = a.window / 60 + 1
        warm = [r for r in rows if r[0] >= warm_min] or rows
        s = slope([r[0] for r in warm], [r[1] for r in warm])
        heaps = [r[1] for r in warm]
        print("heap after the %.0f-minute warm-up: first %.2f MB, last %.2f MB, min %.2f, max %.2f; trend %+.1f kB/min "
              "(%+.2f MB over 24 h if it went on)" % (warm_min, heaps[0], heaps[-1], min(heaps), max(heaps),
                                                      s * 1000, s * 60 * 24), flush=True)
        return 0
    finally:
        if d is not None:
            d.quit()
        setup.terminate()
        try:
            setup.wait(30)
        except subprocess.TimeoutExpired:
            setup.kill()
            setup.wait()


if __name__ == "__main__":
    sys.exit(main())
