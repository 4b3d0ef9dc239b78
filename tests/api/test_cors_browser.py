"""A page on another origin, in headless Chromium, calls /predict and reads /events: only when allowed."""

from __future__ import annotations

import functools
import http.server
import json
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from api_testkit import DATASET, declare, features_of, running_api, synthetic_rows

from infra.testing import REPO, free_port

CHROMIUM = Path("/usr/bin/chromium")

pytestmark = [
    pytest.mark.kafka,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is absent: `make browser` installs it"),
]

PAGE = """<!doctype html><html><body><pre id="out">pending</pre><script>
const out = {predict: "pending", events: "pending"};
const show = () => { document.getElementById("out").textContent = JSON.stringify(out); };
fetch("%(api)s/predict?log=false", {method: "POST", headers: {"Content-Type": "application/json"},
                                    body: JSON.stringify({features: %(x)s})})
  .then(r => r.json()).then(j => { out.predict = "ok:" + j.fingerprint; show(); })
  .catch(() => { out.predict = "refused"; show(); });
const es = new EventSource("%(sse)s/events?rate=0");
es.addEventListener("record", e => { out.events = "ok:" + e.lastEventId; show(); es.close(); });
es.onerror = () => { if (out.events === "pending") { out.events = "refused"; show(); } es.close(); };
</script></body></html>"""


class _PageServer:
    """A static page on its own port: another origin than the API and the SSE server."""

    def __init__(self, root: Path) -> None:
        handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
        handler.log_message = lambda *a, **k: None  # type: ignore[method-assign]
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
        self.origin = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()


def _browse(url: str, profile: Path) -> dict:
    out = subprocess.run([str(CHROMIUM), "--headless=new", "--no-sandbox", "--disable-gpu",
                          f"--user-data-dir={profile}", "--virtual-time-budget=8000", "--dump-dom", url],
                         capture_output=True, text=True, timeout=120)
    found = re.search(r'<pre id="out">(.*?)</pre>', out.stdout, re.S)
    assert found, f"no result in the page: {out.stdout[-500:]} {out.stderr[-500:]}"
    return json.loads(found.group(1).replace("&quot;", '"'))


def _sse_server(port: int, origins: str) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([sys.executable, "-m", "producer", "serve", "--port", str(port),
                             "--cors-origins", origins, "--synthetic-rows", "50", "--log-level", "WARNING"],
                            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.3)
    proc.kill()
    raise AssertionError("the SSE server did not start")


def test_a_page_on_an_allowed_origin_reads_the_api_and_the_events_and_others_are_refused(
        kafka_settings, topics, tmp_path):
    declare(kafka_settings, topics)
    x = features_of(DATASET, synthetic_rows(tmp_path, 1)[0])
    allowed, other = _PageServer(tmp_path), _PageServer(tmp_path)
    sse_port = free_port()
    sse = _sse_server(sse_port, allowed.origin)
    try:
        with running_api(kafka_settings, topics, "--cors-origins", allowed.origin) as api:
            (tmp_path / "page.html").write_text(PAGE % {"api": api.base, "sse": f"http://127.0.0.1:{sse_port}",
                                                         "x": json.dumps(x)})
            ok = _browse(f"{allowed.origin}/page.html", tmp_path / "profile-a")
            assert ok["predict"].startswith("ok:") and len(ok["predict"]) == 3 + 64, ok
            assert ok["events"] == "ok:1", ok
            refused = _browse(f"{other.origin}/page.html", tmp_path / "profile-b")
            assert refused == {"predict": "refused", "events": "refused"}
            # The refusal is the browser's: the API itself answers any client, without the header.
            plain = httpx.post(f"{api.base}/predict", params={"log": "false"}, json={"features": x},
                               headers={"Origin": other.origin}, timeout=10)
            assert plain.status_code == 200 and "access-control-allow-origin" not in plain.headers
    finally:
        sse.kill()
        sse.wait(10)
        allowed.close()
        other.close()
