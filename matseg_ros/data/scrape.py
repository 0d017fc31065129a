"""`matseg data scrape`: download material photos listed on web pages (the seed's JSON config).

Config: `{"Fabric": {"url", "tag_img_container", "tag_img_container_class", "tag_image",
"var_tag_image"}, ...}`: on each page, every `tag_image` inside a `tag_img_container` of
that class gives an image address in its `var_tag_image` attribute. Output:
`{output}/{Material}/JPEG{Material}/{Material}_{NNNNNN}.jpg`, numbered in order.

Downloads are careful: a timeout per request, retries with exponential backoff on
connection errors, timeouts and 5xx answers, a byte cap enforced while streaming, an
image content type and a decodable image required, content de-duplicated by SHA-256,
file names made here (never taken from the URL), a polite delay between requests, and
a manifest (`sources.json`) per material so a re-run skips what is done. Pages that
only fill in while scrolling need Selenium (`--scroll N`), an optional extra.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urljoin, urlparse

import cv2
import numpy as np

from ..fileio import atomic_write_bytes, atomic_write_text, sanitize_filename

KEYS = ("url", "tag_img_container", "tag_img_container_class", "tag_image", "var_tag_image")


class ScrapeError(ValueError):
    """A config or page problem; the message names the file, material or URL."""


class TransientError(ScrapeError):
    """A download that may work later (timeouts, dropped connections, 5xx): not recorded as
    rejected in sources.json, so the next run tries it again."""


@dataclass
class Options:
    timeout: float = 15.0
    retries: int = 3
    backoff: float = 0.5          # seconds, doubled per retry
    max_bytes: int = 20 << 20
    max_seconds: float = 120.0    # whole download, against servers that trickle bytes
    delay: float = 1.0            # between requests
    scroll: int = 0               # Selenium scrolls (0 = plain requests)
    user_agent: str = "matseg_ros-scraper/1.0 (+research; polite)"


@dataclass
class Report:
    saved: list[str] = field(default_factory=list)
    skipped: int = 0
    duplicates: int = 0
    rejected: list[tuple[str, str]] = field(default_factory=list)


def load_config(path: Path) -> dict[str, dict[str, str]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ScrapeError(f"{path}: cannot read config: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise ScrapeError(f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}): {exc.msg}") from None
    if not isinstance(data, dict) or not data:
        raise ScrapeError(f"{path}: expected an object mapping material names to page settings")
    for material, entry in data.items():
        if not isinstance(entry, dict):
            raise ScrapeError(f"{path}: {material!r} must be an object with keys {', '.join(KEYS)}")
        missing = [k for k in KEYS if k not in entry]
        if missing:
            raise ScrapeError(f"{path}: {material!r} is missing key(s) {', '.join(missing)}")
        bad = [k for k in KEYS if not isinstance(entry[k], str)]
        if bad:
            raise ScrapeError(f"{path}: {material!r}: key(s) {', '.join(bad)} must be strings")
        if urlparse(entry["url"]).scheme not in ("http", "https"):
            raise ScrapeError(f"{path}: {material!r}: url must be http(s), got {entry['url']!r}")
    return data


class Fetcher:
    """GETs with timeout, retries with backoff, a polite delay and a streamed byte cap."""

    def __init__(self, options: Options):
        import requests
        from urllib3 import exceptions as urllib3_errors

        self.requests = requests
        # worth another attempt: no connection, timeouts, a connection dropped mid-body
        self.transient = (requests.ConnectionError, requests.Timeout,
                          requests.exceptions.ChunkedEncodingError, urllib3_errors.ProtocolError,
                          urllib3_errors.ReadTimeoutError)
        # not: a bad URL, a redirect loop, undecodable content
        self.permanent = (requests.RequestException, urllib3_errors.HTTPError)
        self.options = options
        self.session = requests.Session()
        self.session.headers["User-Agent"] = options.user_agent
        self._last = 0.0

    def get(self, url: str, want_image: bool) -> bytes:
        opts, last_error = self.options, "no attempt"
        for attempt in range(opts.retries + 1):
            if attempt:
                time.sleep(opts.backoff * 2 ** (attempt - 1))
            wait = self._last + opts.delay - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            self._last = started = time.monotonic()
            try:
                with self.session.get(url, timeout=opts.timeout, stream=True) as response:
                    if response.status_code >= 500:
                        last_error = f"HTTP {response.status_code}"
                        continue
                    if response.status_code != 200:
                        raise ScrapeError(f"HTTP {response.status_code}")
                    kind = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
                    if want_image and not kind.startswith("image/"):
                        raise ScrapeError(f"content type {kind or 'missing'!r}, not an image")
                    declared = response.headers.get("Content-Length", "")
                    if declared.isdigit() and int(declared) > opts.max_bytes:
                        raise ScrapeError(f"{declared} bytes declared, over the {opts.max_bytes}-byte cap")
                    chunks, size = [], 0
                    # read1: whatever has arrived (≤ 64 KiB), so a trickling server meets the
                    # deadline; iter_content would block until a whole chunk is in
                    while chunk := response.raw.read1(64 << 10, decode_content=True):
                        size += len(chunk)
                        if size > opts.max_bytes:
                            raise ScrapeError(f"over the {opts.max_bytes}-byte cap, aborted")
                        if time.monotonic() - started > opts.max_seconds:
                            raise TransientError(f"over the {opts.max_seconds:g}-second download "
                                                 "limit, aborted")
                        chunks.append(chunk)
                    return b"".join(chunks)
            except self.transient as exc:
                last_error = f"{type(exc).__name__}: {exc}"
            except self.permanent as exc:
                raise ScrapeError(f"{type(exc).__name__}: {exc}") from None
        raise TransientError(f"gave up after {opts.retries + 1} attempts ({last_error})")


def page_html(url: str, fetcher: Fetcher) -> str:
    if fetcher.options.scroll:
        return _scrolled_html(url, fetcher.options.scroll, fetcher.options.timeout)
    return fetcher.get(url, want_image=False).decode("utf-8", errors="replace")


def _scrolled_html(url: str, scrolls: int, timeout: float) -> str:
    try:
        from selenium import webdriver
    except ImportError:
        raise ScrapeError("--scroll needs Selenium, an optional extra: pip install selenium "
                          "(and a Chrome/Chromium with its chromedriver on PATH)") from None
    options = webdriver.ChromeOptions()
    options.add_argument("--headless=new")
    driver = webdriver.Chrome(options=options)
    try:
        driver.set_page_load_timeout(timeout)
        driver.get(url)
        for _ in range(scrolls):
            driver.execute_script("window.scrollTo(0, document.body.scrollHeight);")
            time.sleep(1.0)
        return driver.page_source
    finally:
        driver.quit()


def image_urls(html: str, base_url: str, entry: dict[str, str]) -> list[str]:
    """Absolute http(s) image addresses named by the config's tags, in page order, unique."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(html, "html.parser")
    wanted = entry["tag_img_container_class"] or None
    urls: list[str] = []
    for container in soup.find_all(entry["tag_img_container"], class_=wanted):
        for tag in container.find_all(entry["tag_image"]):
            value = tag.get(entry["var_tag_image"])
            if not value:
                continue
            try:
                url = urljoin(base_url, value.strip())
                scheme = urlparse(url).scheme
            except ValueError:  # a malformed address on the page (e.g. "http://[::1/x.jpg")
                continue
            if scheme in ("http", "https") and url not in urls:
                urls.append(url)
    return urls


def scrape_material(material: str, entry: dict[str, str], output: Path, fetcher: Fetcher) -> Report:
    name = sanitize_filename(material)
    folder = output / name / f"JPEG{name}"
    folder.mkdir(parents=True, exist_ok=True)
    manifest_path = output / name / "sources.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    hashes = {hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.glob(f"{name}_*.jpg")}
    suffixes = [p.stem.rsplit("_", 1)[1] for p in folder.glob(f"{name}_*.jpg")]
    numbers = [int(s) for s in suffixes if s.isdigit()]
    next_number = max(numbers, default=-1) + 1
    report = Report()
    try:
        urls = image_urls(page_html(entry["url"], fetcher), entry["url"], entry)
    except ScrapeError as exc:
        raise ScrapeError(f"{material}: page {entry['url']}: {exc}") from None
    try:
        for url in urls:
            if url in manifest:
                report.skipped += 1
                continue
            try:
                data = fetcher.get(url, want_image=True)
                image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
                if image is None:
                    raise ScrapeError("not a decodable image")
            except ScrapeError as exc:
                report.rejected.append((url, str(exc)))
                if not isinstance(exc, TransientError):  # a transient failure is retried next run
                    manifest[url] = {"rejected": str(exc)}
                continue
            digest = hashlib.sha256(data).hexdigest()
            if digest in hashes:
                report.duplicates += 1
                manifest[url] = {"duplicate_of": digest}
                continue
            if not data.startswith(b"\xff\xd8"):  # keep JPEGs byte for byte, convert the rest
                data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes()
            file_name = f"{name}_{next_number:06d}.jpg"
            atomic_write_bytes(folder / file_name, data)
            hashes.update({digest, hashlib.sha256(data).hexdigest()})
            manifest[url] = {"file": file_name, "sha256": digest,
                             "source_name": sanitize_filename(Path(urlparse(url).path).name)}
            report.saved.append(file_name)
            next_number += 1
    finally:
        atomic_write_text(manifest_path, json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return report


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, required=True, help="scraping config JSON (seed format)")
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument("--delay", type=float, default=1.0, help="seconds between requests (default 1)")
    parser.add_argument("--timeout", type=float, default=15.0, help="seconds per request (default 15)")
    parser.add_argument("--retries", type=int, default=3)
    parser.add_argument("--max-mb", type=float, default=20.0, help="largest image to accept, MB (default 20)")
    parser.add_argument("--max-seconds", type=float, default=120.0,
                        help="longest whole download of one file, seconds (default 120)")
    parser.add_argument("--scroll", type=int, default=0, help="scroll pages N times with Selenium (optional extra)")


def run(args: argparse.Namespace) -> int:
    options = Options(timeout=args.timeout, retries=args.retries, max_bytes=int(args.max_mb * (1 << 20)),
                      max_seconds=args.max_seconds, delay=args.delay, scroll=args.scroll)
    try:
        config = load_config(args.config)
    except ScrapeError as exc:
        print(f"matseg data scrape: {exc}", file=sys.stderr)
        return 2
    fetcher, failed = Fetcher(options), 0
    for material, entry in config.items():
        try:
            report = scrape_material(material, entry, args.output, fetcher)
        except ScrapeError as exc:
            print(f"matseg data scrape: {exc}", file=sys.stderr)
            failed += 1
            continue
        print(f"{material}: {len(report.saved)} saved, {report.skipped} already done, "
              f"{report.duplicates} duplicates, {len(report.rejected)} rejected")
        for url, why in report.rejected:
            print(f"  rejected {url}: {why}", file=sys.stderr)
    return 1 if failed else 0
