"""Check a built docs site: every internal link and anchor resolves (``links``), and, in a real headless browser
(Debian's chromium through playwright), every page loads without console errors or page errors, with screenshots
of the home page, one tutorial and one API page.

``python docs/check_site.py SITE [--screenshots DIR] [--no-browser]``: exit status 1 and one line per problem if
any."""

from __future__ import annotations

import argparse
import shutil
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = {"home": "index.html", "tutorial": "tutorials/01_srwm_in_flax_nnx.html", "api": "api/srwm.html"}


class _Page(HTMLParser):
    """The ids and the link targets (href of a, src of img and script) of one HTML page."""

    def __init__(self):
        super().__init__()
        self.ids, self.links = set(), []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "id" in attrs:
            self.ids.add(attrs["id"])
        target = attrs.get("href") if tag in ("a", "link") else attrs.get("src") if tag in ("img", "script") else None
        if target:
            self.links.append(target)


def _pages(site: Path) -> list[Path]:
    """The site's pages: its HTML files but the theme's templates in _static/."""
    return sorted(p for p in site.rglob("*.html") if p.relative_to(site).parts[0] != "_static")


def _parse(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text(errors="replace"))
    return page


def broken_links(site: Path) -> list[str]:
    """'page: target' for every internal link whose file, or whose #anchor in that file, does not exist.
    External links (with a scheme or host) are not followed: the docs build offline."""
    pages = {path: _parse(path) for path in _pages(site)}
    problems = []
    for path, page in pages.items():
        for link in page.links:
            parts = urlsplit(link)
            if parts.scheme or parts.netloc or link.startswith("#") and not link[1:]:
                continue
            target = (path.parent / unquote(parts.path)).resolve() if parts.path else path
            if target.is_dir():
                target = target / "index.html"
            if not target.exists():
                problems.append(f"{path.relative_to(site)}: {link} (no such file)")
            elif parts.fragment and target.suffix == ".html":
                ids = pages[target].ids if target in pages else _parse(target).ids
                if unquote(parts.fragment) not in ids:
                    problems.append(f"{path.relative_to(site)}: {link} (no such anchor)")
    return problems


def browser_problems(site: Path, screenshots: Path | None) -> list[str]:
    """Open every page in headless chromium: 'page: message' for each console error and page error."""
    from playwright.sync_api import sync_playwright

    problems = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        current = {"name": ""}
        external = []  # resources from the web (MathJax's CDN): this check runs offline, a reader's browser online

        def console(message):
            if message.type != "error":
                return
            if urlsplit(message.location.get("url", "")).scheme in ("http", "https"):
                external.append(message.location["url"])
            else:
                problems.append(f"{current['name']}: console: {message.text}")

        page.on("console", console)
        page.on("pageerror", lambda e: problems.append(f"{current['name']}: page error: {e}"))
        for path in _pages(site):
            current["name"] = str(path.relative_to(site))
            page.goto(path.resolve().as_uri(), wait_until="load")
        if screenshots is not None:
            screenshots.mkdir(parents=True, exist_ok=True)
            for label, name in SCREENSHOTS.items():
                if (site / name).exists():
                    current["name"] = name
                    page.goto((site / name).resolve().as_uri(), wait_until="load")
                    page.screenshot(path=str(screenshots / f"{label}.png"), full_page=False)
                else:
                    problems.append(f"{name}: missing (a screenshot was asked for)")
        browser.close()
    if external:
        print(f"not loaded offline (external): {sorted(set(external))}")
    return problems


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("site", type=Path, help="the built site (the folder of index.html)")
    parser.add_argument("--screenshots", type=Path, help="write home.png, tutorial.png and api.png here")
    parser.add_argument("--no-browser", action="store_true", help="check links only")
    args = parser.parse_args(argv)
    if not (args.site / "index.html").exists():
        parser.error(f"site: no index.html in {args.site}")
    problems = broken_links(args.site)
    if not args.no_browser:
        if not shutil.which(CHROMIUM):
            parser.error(f"the browser check needs Debian's chromium at {CHROMIUM} (bash scripts/setup.sh docs, as "
                         "root), or --no-browser")
        problems += browser_problems(args.site, args.screenshots)
    for problem in problems:
        print(problem)
    pages = len(_pages(args.site))
    print(f"{pages} pages: {len(problems)} problems" + (f"; screenshots in {args.screenshots}" if args.screenshots
                                                        and not args.no_browser else ""))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
