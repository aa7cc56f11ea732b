"""Opens the companion pages in a real browser (headless Chromium, driven over the DevTools protocol) and
fails on any console error, failed load or broken image, on a lesson page that shows another number of
cells than its main.cpp has, or on a page wider than a phone's screen. Saves screenshots at a laptop's
width and a phone's under OUT_DIR/screenshots/.

usage: browser_check.py ROOT OUT_DIR
Before the real pages it checks a page broken on purpose, and fails unless that page is caught.
"""
import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

import websocket

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cells import cpp_cells, lessons  # noqa: E402

LAPTOP = {"width": 1366, "height": 900, "deviceScaleFactor": 1, "mobile": False}
PHONE = {"width": 390, "height": 844, "deviceScaleFactor": 2, "mobile": True}


class Browser:
    def __init__(self):
        self.profile = tempfile.mkdtemp(prefix="companion-chromium-")
        exe = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
        if exe is None:
            raise SystemExit("error: no chromium found; run scripts/install-deps.sh companion")
        args = [exe, "--headless=new", "--remote-debugging-port=0", "--remote-debugging-address=127.0.0.1",
                f"--user-data-dir={self.profile}", "--no-first-run", "--disable-gpu", "--hide-scrollbars",
                "--allow-file-access-from-files", "--remote-allow-origins=*", "about:blank"]
        if os.geteuid() == 0:
            args.insert(1, "--no-sandbox")  # Chromium refuses to run as root with its sandbox
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port_file = os.path.join(self.profile, "DevToolsActivePort")
        deadline = time.time() + 60
        while not os.path.exists(port_file) or os.path.getsize(port_file) == 0:
            if time.time() > deadline or self.proc.poll() is not None:
                raise SystemExit("error: chromium did not start its DevTools endpoint")
            time.sleep(0.1)
        self.port = open(port_file).read().split()[0]
        targets = json.load(urllib.request.urlopen(f"http://127.0.0.1:{self.port}/json/list"))
        page = next(t for t in targets if t["type"] == "page")
        # Chromium refuses a DevTools connection that announces an origin it was not told to allow.
        self.ws = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=60, suppress_origin=True)
        self.next_id = 0
        self.events = []
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.call(f"{domain}.enable")

    def call(self, method, **params):
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv())
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            self.events.append(message)

    def wait_for(self, method, timeout=60):
        deadline = time.time() + timeout
        while time.time() < deadline:
            for i, e in enumerate(self.events):
                if e.get("method") == method:
                    del self.events[i]
                    return e
            self.ws.settimeout(max(0.1, deadline - time.time()))
            self.events.append(json.loads(self.ws.recv()))
        raise TimeoutError(method)

    def open(self, url, metrics):
        self.call("Emulation.setDeviceMetricsOverride", **metrics)
        self.events.clear()
        self.call("Page.navigate", url=url)
        self.wait_for("Page.loadEventFired")
        self.call("Runtime.evaluate", expression="new Promise(r => requestAnimationFrame(() => r(1)))",
                  awaitPromise=True)

    def problems(self):
        """Console errors, uncaught exceptions and failed loads seen since the last open()."""
        found = []
        for e in self.events:
            method, p = e.get("method"), e.get("params", {})
            if method == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                found.append("console error: " + " ".join(str(a.get("value", a.get("description", "")))
                                                          for a in p.get("args", [])))
            elif method == "Runtime.exceptionThrown":
                found.append("exception: " + p["exceptionDetails"].get("text", ""))
            elif method == "Log.entryAdded" and p["entry"].get("level") == "error":
                found.append(f"log error: {p['entry'].get('text', '')} {p['entry'].get('url', '')}")
            elif method == "Network.loadingFailed":
                found.append(f"load failed: {p.get('errorText')}")
        return found

    def evaluate(self, expression):
        return self.call("Runtime.evaluate", expression=expression, returnByValue=True)["result"].get("value")

    def screenshot(self, path, full_page):
        params = {"format": "png"}
        if full_page:
            height = self.evaluate("document.documentElement.scrollHeight")
            params["clip"] = {"x": 0, "y": 0, "width": LAPTOP["width"], "height": min(height, 12000), "scale": 1}
            params["captureBeyondViewport"] = True
        data = self.call("Page.captureScreenshot", **params)["data"]
        with open(path, "wb") as f:
            f.write(base64.b64decode(data))

    def close(self):
        try:
            self.ws.close()
        finally:
            self.proc.kill()
            self.proc.wait()
            shutil.rmtree(self.profile, ignore_errors=True)


def check_page(browser, path, expected_cells, shots, name):
    failures = []
    url = "file://" + os.path.abspath(path)
    browser.open(url, LAPTOP)
    failures += browser.problems()
    broken = browser.evaluate("Array.from(document.images).filter(i => !i.complete || i.naturalWidth === 0)"
                              ".map(i => i.alt || i.src.slice(0, 40))")
    failures += [f"image not shown: {b}" for b in broken]
    if expected_cells is not None:
        shown = browser.evaluate("document.querySelectorAll('section.cell').length")
        if shown != expected_cells:
            failures.append(f"shows {shown} cells, main.cpp has {expected_cells}")
    if shots:
        browser.screenshot(os.path.join(shots, f"{name}-laptop.png"), full_page=True)
    browser.open(url, PHONE)
    failures += browser.problems()
    # Wider than the screen, or cut off at its right edge (a table inside a clipping box).
    overflow = browser.evaluate(
        "Math.max(document.documentElement.scrollWidth, ...Array.from(document.querySelectorAll("
        "'table, th, td, h1, h2, .mark')).map(e => Math.ceil(e.getBoundingClientRect().right))) - window.innerWidth")
    if overflow and overflow > 0:
        failures.append(f"wider than a phone's screen by {overflow} px")
    if shots:
        browser.screenshot(os.path.join(shots, f"{name}-phone.png"), full_page=False)
    return failures


def main():
    root, out_dir = sys.argv[1:3]
    shots = os.path.join(out_dir, "screenshots")
    os.makedirs(shots, exist_ok=True)
    browser = Browser()
    try:
        # The opposite case first: a page with a console error, a broken image and one cell too few must fail.
        with tempfile.TemporaryDirectory() as tmp:
            bad = os.path.join(tmp, "bad.html")
            with open(bad, "w") as f:
                f.write('<!doctype html><meta name="viewport" content="width=device-width"><body>'
                        '<section class="cell"></section><img alt="missing" src="missing.png">'
                        '<div style="width:2000px">wide</div><table style="width:1500px"><tr><td>cut</td></tr></table><script>console.error("planted")</script>')
            caught = check_page(browser, bad, 2, None, "bad")
            needed = ["console error", "image not shown", "shows 1 cells", "wider than"]
            missed = [n for n in needed if not any(n in c for c in caught)]
            if missed:
                print(f"error: the browser check did not catch a broken page: {missed}")
                return 1
            print(f"broken page caught: {len(caught)} problem(s)")
        failures = 0
        pages = [("index", None)] + [(name, len(cpp_cells(main))) for name, main, _ in lessons(root)]
        for name, expected in pages:
            found = check_page(browser, os.path.join(out_dir, f"{name}.html"), expected, shots, name)
            print(f"{name}.html: " + ("ok" if not found else "FAIL") +
                  (f" ({expected} cells)" if expected is not None else ""))
            for problem in found:
                print("  " + problem)
            failures += bool(found)
        print(f"screenshots in {shots}")
        return 1 if failures else 0
    finally:
        browser.close()


if __name__ == "__main__":
    sys.exit(main())
