"""`matseg data scrape` against a local HTTP server on 127.0.0.1 serving fixture pages."""
from __future__ import annotations

import argparse
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import cv2
import numpy as np
import pytest

from matseg_ros.data import scrape
from matseg_ros.data.cli import add_arguments, run

RNG = np.random.default_rng(0)
JPEG = cv2.imencode(".jpg", RNG.integers(0, 255, (40, 50, 3), dtype=np.uint8))[1].tobytes()
PNG = cv2.imencode(".png", RNG.integers(0, 255, (30, 30, 3), dtype=np.uint8))[1].tobytes()
OTHER = cv2.imencode(".jpg", RNG.integers(0, 255, (20, 20, 3), dtype=np.uint8))[1].tobytes()
THIRD = cv2.imencode(".jpg", RNG.integers(0, 255, (24, 16, 3), dtype=np.uint8))[1].tobytes()

PAGE = """<html><body>
<svg class="fix-aspect"><image xlink:href="/img/a.jpg"/></svg>
<svg class="fix-aspect other"><image xlink:href="img/b.png"/></svg>
<svg class="fix-aspect"><image xlink:href="/img/dup.jpg"/><image xlink:href="/img/a.jpg"/></svg>
<svg class="fix-aspect"><image xlink:href="/img/slow.jpg"/></svg>
<svg class="fix-aspect"><image xlink:href="/img/big.jpg"/></svg>
<svg class="fix-aspect"><image xlink:href="/img/declared-big.jpg"/></svg>
<svg class="fix-aspect"><image xlink:href="/img/text.jpg"/></svg>
<svg class="fix-aspect"><image xlink:href="/img/flaky.jpg"/></svg>
<svg class="fix-aspect"><image xlink:href="/img/../../x.jpg"/></svg>
<svg class="fix-aspect"><image xlink:href="/img/broken.jpg"/></svg>
<svg class="fix-aspect"><image xlink:href="/img/missing.jpg"/></svg>
<svg class="fix-aspect"><image xlink:href="javascript:alert(1)"/></svg>
<svg class="fix-aspect"><image xlink:href="/img/odd-length.jpg"/></svg>
<svg class="fix-aspect"><image xlink:href="/img/cut.jpg"/></svg>
<svg class="fix-aspect"><image xlink:href="/img/trickle.jpg"/></svg>
<svg class="fix-aspect"><image xlink:href="http://[::1/img/unparsable.jpg"/></svg>
<svg class="fix-aspect"><image xlink:href="https:///img/bad-url.jpg"/></svg>
<svg class="thumbnail"><image xlink:href="/img/not-in-a-container-of-the-class.jpg"/></svg>
</body></html>"""


class Handler(BaseHTTPRequestHandler):
    hits: dict[str, int] = {}

    def log_message(self, *args):  # keep test output clean
        pass

    def send(self, body: bytes, kind: str, status: int = 200, length: bool = True):
        self.send_response(status)
        self.send_header("Content-Type", kind)
        if length:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        path = self.path
        Handler.hits[path] = Handler.hits.get(path, 0) + 1
        if path == "/page.html":
            return self.send(PAGE.encode(), "text/html; charset=utf-8")
        if path == "/broken-page.html":
            return self.send(b"", "text/html", status=500)
        if path in ("/img/a.jpg", "/img/dup.jpg"):
            return self.send(JPEG, "image/jpeg")
        if path == "/img/b.png":
            return self.send(PNG, "image/png")
        if path == "/x.jpg":  # where ../../x.jpg resolves to
            return self.send(OTHER, "image/jpeg")
        if path == "/img/slow.jpg":
            time.sleep(1.5)
            return self.send(JPEG, "image/jpeg")
        if path == "/img/big.jpg":  # no Content-Length: the cap must stop the stream
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            self.end_headers()
            try:
                for _ in range(40):
                    self.wfile.write(b"\xff" * 8192)
            except (BrokenPipeError, ConnectionResetError):
                pass
            return None
        if path == "/img/declared-big.jpg":
            return self.send(b"\xff" * 200_000, "image/jpeg")
        if path == "/img/text.jpg":
            return self.send(b"<html>not an image</html>", "text/html")
        if path == "/img/flaky.jpg":
            if Handler.hits[path] == 1:
                return self.send(b"oops", "text/plain", status=500)
            return self.send(cv2.imencode(".jpg", np.full((10, 10, 3), 90, np.uint8))[1].tobytes(), "image/jpeg")
        if path == "/img/odd-length.jpg":  # a Content-Length that is no number: read to the end
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            self.send_header("Content-Length", "lots")
            self.end_headers()
            self.wfile.write(THIRD)
            return None
        if path == "/img/cut.jpg":  # the connection drops mid-body
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            self.send_header("Content-Length", str(len(JPEG)))
            self.end_headers()
            self.wfile.write(JPEG[:100])
            self.wfile.flush()
            self.close_connection = True
            return None
        if path == "/img/trickle.jpg":  # a byte every 0.1 s: each read is within the timeout
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            self.end_headers()
            try:
                for byte in JPEG[:40]:
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()
                    time.sleep(0.1)
            except (BrokenPipeError, ConnectionResetError):
                pass
            return None
        if path == "/img/broken.jpg":
            return self.send(b"\xff\xd8 this is not really a jpeg", "image/jpeg")
        return self.send(b"not found", "text/plain", status=404)


class QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):  # clients that gave up (timeout, cap)
        pass


@pytest.fixture
def server():
    Handler.hits = {}
    httpd = QuietServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def config(tmp_path, base, page="/page.html", material="Fabric"):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({material: {"url": base + page, "tag_img_container": "svg",
                                           "tag_img_container_class": "fix-aspect", "tag_image": "image",
                                           "var_tag_image": "xlink:href"}}))
    return path


OPTIONS = scrape.Options(timeout=0.5, retries=1, backoff=0.01, max_bytes=50_000, max_seconds=1.0,
                         delay=0.0)


def test_scrapes_checks_and_names_images_and_resumes(tmp_path, server):
    out = tmp_path / "out"
    entry = scrape.load_config(config(tmp_path, server))["Fabric"]
    report = scrape.scrape_material("Fabric", entry, out, scrape.Fetcher(OPTIONS))
    folder = out / "Fabric" / "JPEGFabric"
    assert report.saved == [f"Fabric_{i:06d}.jpg" for i in range(5)]  # a, b (png->jpg), flaky, x, odd-length
    assert sorted(p.name for p in folder.iterdir()) == report.saved
    assert all(cv2.imread(str(folder / n)) is not None for n in report.saved)
    assert (folder / "Fabric_000000.jpg").read_bytes() == JPEG  # JPEGs kept byte for byte
    assert report.duplicates == 1  # dup.jpg has a.jpg's bytes; the second a.jpg link is the same URL
    why = {url.rsplit("/", 1)[1]: reason for url, reason in report.rejected}
    assert set(why) == {"slow.jpg", "big.jpg", "declared-big.jpg", "text.jpg", "broken.jpg", "missing.jpg",
                        "cut.jpg", "trickle.jpg", "bad-url.jpg"}
    assert "ReadTimeout" in why["slow.jpg"] and "gave up after 2 attempts" in why["slow.jpg"]
    assert "gave up after 2 attempts" in why["cut.jpg"] and Handler.hits["/img/cut.jpg"] == 2
    assert "over the 1-second download limit" in why["trickle.jpg"]
    assert "InvalidURL" in why["bad-url.jpg"]
    assert "byte cap, aborted" in why["big.jpg"] and "200000 bytes declared" in why["declared-big.jpg"]
    assert "content type 'text/html'" in why["text.jpg"] and "not a decodable image" in why["broken.jpg"]
    assert "HTTP 404" in why["missing.jpg"]
    assert Handler.hits["/img/flaky.jpg"] == 2  # a 500, then success on the retry
    assert "/img/not-in-a-container-of-the-class.jpg" not in Handler.hits
    # nothing escaped the output folder: ../../x.jpg was saved under a name made here
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.jpg")) == \
        [f"out/Fabric/JPEGFabric/{n}" for n in report.saved]
    manifest = json.loads((out / "Fabric" / "sources.json").read_text())
    assert manifest[server + "/x.jpg"]["source_name"] == "x.jpg"
    assert manifest[server + "/img/missing.jpg"] == {"rejected": "HTTP 404"}
    # a re-run fetches nothing it has seen, except what failed for a passing reason
    transient = {"/img/slow.jpg", "/img/cut.jpg", "/img/trickle.jpg"}
    assert not {server + path for path in transient} & set(manifest)
    before = dict(Handler.hits)
    again = scrape.scrape_material("Fabric", entry, out, scrape.Fetcher(OPTIONS))
    assert again.saved == [] and again.skipped == 12  # the 15 distinct links less the 3
    assert {k for k, v in Handler.hits.items() if v != before.get(k)} == {"/page.html"} | transient


def test_command_line_reports_a_failing_page(tmp_path, server, capsys):
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["scrape", "--config", str(config(tmp_path, server, "/broken-page.html")),
                              "--output", str(tmp_path / "o"), "--delay", "0", "--retries", "1",
                              "--timeout", "1"])
    assert run(args) == 1
    assert "Fabric: page http://127.0.0.1" in capsys.readouterr().err


@pytest.mark.parametrize("text, message", [
    ("{\n  \"Fabric\": {,}\n}", "not valid JSON (line 2"),
    ('{"Fabric": {"url": "http://127.0.0.1/", "tag_image": "image"}}',
     "'Fabric' is missing key(s) tag_img_container, tag_img_container_class, var_tag_image"),
    ('{"Fabric": {"url": "file:///etc/passwd", "tag_img_container": "svg", "tag_img_container_class": "",'
     ' "tag_image": "image", "var_tag_image": "src"}}', "url must be http(s)"),
    ("[]", "expected an object mapping material names"),
])
def test_bad_config_names_the_problem(tmp_path, text, message):
    path = tmp_path / "c.json"
    path.write_text(text)
    with pytest.raises(scrape.ScrapeError, match=message.replace("(", r"\(").replace(")", r"\)")):
        scrape.load_config(path)


def test_scrolling_without_selenium_explains_how_to_install(monkeypatch, tmp_path):
    import builtins

    real_import = builtins.__import__

    def no_selenium(name, *args, **kwargs):
        if name.startswith("selenium"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_selenium)
    fetcher = scrape.Fetcher(scrape.Options(scroll=2, delay=0))
    with pytest.raises(scrape.ScrapeError, match="pip install selenium"):
        scrape.page_html("http://127.0.0.1:9/", fetcher)
