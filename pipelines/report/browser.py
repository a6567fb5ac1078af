"""Open a report.html in headless Chromium with the network off and say what a reader would get:
console errors, failed requests, the headings, each chart's rendered size, the page width; and a
screenshot. Debian's `chromium` (Playwright cannot download its own browser offline), driven by
Playwright's Python API. The browser test uses it, and so does the README's picture:

    python -m pipelines.report.browser out/report.html --screenshot docs/report.png --height 2400
"""

from __future__ import annotations

import argparse
import os
import pathlib
import shutil
import sys
from dataclasses import dataclass

WIDTH = 1280  # the narrowest desktop layout the report must fit without horizontal scrolling


@dataclass
class PageCheck:
    console_errors: list[str]
    failed_requests: list[str]  # every request but the file itself: the page must need none
    headings: list[str]  # h1, h2 and h3 texts, in order
    charts: list[dict]  # per chart: label, visible, width, height (CSS px), texts (<text> elements)
    scroll_width: int  # the page's width; more than the window's means a horizontal scrollbar


def find_chromium() -> str | None:
    """$CHROMIUM, or Debian's chromium on the PATH."""
    return os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


def open_report(path: str, screenshot: str | None = None, height: int | None = None, width: int = WIDTH) -> PageCheck:
    """Load `path` and check it; save a screenshot of the whole page (or of its top `height` px)."""
    from playwright.sync_api import sync_playwright

    executable = find_chromium()
    if executable is None:
        raise FileNotFoundError("no chromium found: apt-get install chromium (or set CHROMIUM)")
    url = pathlib.Path(path).resolve().as_uri()
    errors: list[str] = []
    failed: list[str] = []
    with sync_playwright() as playwright:
        # --no-sandbox: CI runs as root, where Chromium refuses its sandbox.
        browser = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        try:
            context = browser.new_context(viewport={"width": width, "height": 900}, offline=True)
            page = context.new_page()
            page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.on("requestfailed", lambda request: failed.append(request.url))
            page.route("**/*", lambda route: route.continue_() if route.request.url == url else route.abort())
            page.goto(url, wait_until="load")
            headings = [text.strip() for text in page.locator("h1, h2, h3").all_inner_texts()]
            charts = []
            for chart in page.locator("figure.chart svg").all():
                box = chart.bounding_box() or {"width": 0, "height": 0}
                charts.append(
                    {
                        "label": chart.get_attribute("aria-label"),
                        "visible": chart.is_visible(),
                        "width": box["width"],
                        "height": box["height"],
                        "texts": chart.locator("text").count(),
                    }
                )
            scroll_width = page.evaluate("document.documentElement.scrollWidth")
            if screenshot:
                clip = {"x": 0, "y": 0, "width": width, "height": height} if height else None
                page.screenshot(path=screenshot, full_page=True, clip=clip)
        finally:
            browser.close()
    return PageCheck(errors, failed, headings, charts, scroll_width)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.report.browser",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("report", help="a report.html")
    parser.add_argument("--screenshot", help="PNG to write")
    parser.add_argument("--height", type=int, help="only the top HEIGHT px of the page in the screenshot")
    args = parser.parse_args(argv)
    check = open_report(args.report, args.screenshot, args.height)
    print(
        f"{len(check.charts)} charts, {sum(c['visible'] for c in check.charts)} visible; "
        f"page width {check.scroll_width} px at {WIDTH}; console errors: {check.console_errors or 'none'}; "
        f"failed requests: {check.failed_requests or 'none'}"
    )
    return 0 if not (check.console_errors or check.failed_requests) else 1


if __name__ == "__main__":
    sys.exit(main())
