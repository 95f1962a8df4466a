"""Helpers for the web tests: Debian's Chromium driven by Playwright, and
screenshots of every page on a phone and a desktop viewport.

Playwright's Python package drives the system's /usr/bin/chromium (no
browser download). Screenshots go to $COFFER_SCREENSHOTS, by default
target/screenshots, as NAME-desktop.png (1280 px) and NAME-phone.png (390 px).

axe-core, the accessibility checker, comes from npm at the version pinned in
tests/e2e/axe/package-lock.json; tests/run installs it into target/axe. The
server never serves it: a test adds it to its own browser context over CDP
(`with_axe`), and `axe_violations` runs it on the page at hand.
"""

import os
import pathlib
import time
import weakref

import pytest

from conftest import ROOT, totp

CHROMIUM = os.environ.get("COFFER_CHROMIUM", "/usr/bin/chromium")
# Without the background-networking flags Chromium keeps trying to reach
# Google's services, which a closed network refuses.
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
AXE = pathlib.Path(os.environ.get(
    "COFFER_AXE", str(ROOT / "target" / "axe" / "node_modules" / "axe-core" / "axe.min.js")))
SHOTS = pathlib.Path(os.environ.get("COFFER_SCREENSHOTS", str(ROOT / "target" / "screenshots")))
VIEWPORTS = (("desktop", 1280, 800), ("phone", 390, 844))


# One browser per test module: a module imports this fixture under its own
# name, and two session-wide Playwright instances cannot run at once.
@pytest.fixture(scope="module")
def chromium():
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is missing (Debian package chromium)")
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        # Playwright gives every launch a new, empty profile directory.
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def new_page(chromium, box):
    context = chromium.new_context(
        base_url=box.url, ignore_https_errors=True, accept_downloads=True,
        viewport={"width": 1280, "height": 800},
    )
    page = context.new_page()
    page.set_default_timeout(20000)
    return page


def with_axe(context):
    """Adds axe-core to every document the browser context opens (CDP's
    Page.addScriptToEvaluateOnNewDocument: not subject to the page's CSP,
    and nothing the server sends)."""
    assert AXE.is_file(), (
        f"{AXE} is missing: tests/run installs axe-core from tests/e2e/axe "
        "(or: mkdir -p target/axe && cp tests/e2e/axe/package*.json target/axe && npm ci --prefix target/axe)")
    context.add_init_script(path=str(AXE))


def axe_violations(page):
    """axe-core's violations on the current page, as a list of
    {id, impact, help, targets}."""
    return page.evaluate(
        """async () => {
            const r = await axe.run(document, {resultTypes: ['violations']});
            return r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                targets: v.nodes.slice(0, 5).map(n => n.target.join(' '))}));
        }"""
    )


CDP = weakref.WeakKeyDictionary()  # page -> its CDP session


def color_scheme(page, scheme):
    """Emulates the system's colour scheme (`light` or `dark`) through CDP's
    Emulation.setEmulatedMedia, and checks that the page sees it. The CDP
    session stays open with the page: Chromium drops a session's emulation
    when it detaches."""
    if page not in CDP:
        CDP[page] = page.context.new_cdp_session(page)
    CDP[page].send("Emulation.setEmulatedMedia", {"features": [{"name": "prefers-color-scheme", "value": scheme}]})
    assert page.evaluate(f"matchMedia('(prefers-color-scheme: {scheme})').matches"), scheme


def shoot(page, name):
    """Full-page screenshots of the current page at both widths."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    for tag, width, height in VIEWPORTS:
        page.set_viewport_size({"width": width, "height": height})
        page.screenshot(path=str(SHOTS / f"{name}-{tag}.png"), full_page=True)
    page.set_viewport_size({"width": 1280, "height": 800})


def next_code(secret, last_step):
    """(step, code) for a TOTP step later than `last_step` that the server
    still accepts (within ±1 step of now), waiting when there is none yet."""
    while True:
        now = time.time()
        current = int(now) // 30
        step = max(current - 1, last_step + 1)
        late = now % 30 > 24
        if step <= current + 1 and not (step == current - 1 and late):
            return step, totp(secret, step=step)
        time.sleep(0.5)


def sign_in(page, user, password):
    page.goto("/login")
    page.fill("#username", user)
    page.fill("#password", password)
    page.click("button[type=submit]")


def sign_in_past_offer(page, user, password):
    """Signs in an account without TOTP and skips the enrolment offer."""
    sign_in(page, user, password)
    page.wait_for_url("**/login/offer")
    page.click("a:has-text('Skip this time')")
    page.wait_for_url("**/files*")


def sign_in_with_code(page, user, password, secret, last_step):
    """Signs in with the password and the next TOTP code after
    `last_step`; returns the step used."""
    sign_in(page, user, password)
    page.wait_for_url("**/login/code")
    step, code = next_code(secret, last_step)
    page.fill("#code", code)
    page.click("button[type=submit]")
    page.wait_for_url("**/files*")
    return step


def claim_in_wizard(page, box, user, password):
    """Claims an unclaimed box through /setup; the wizard then shows its
    enrolment step."""
    page.goto("/setup")
    page.fill("#claim_code", box.claim_code())
    page.fill("#username", user)
    page.fill("#password", password)
    page.fill("#password2", password)
    page.click("button[type=submit]")
    page.wait_for_url("**/security/totp?setup=1")


def confirm_enrolment(page):
    """On an enrolment page: confirms with the app's next code, stores the
    recovery codes and continues; returns (secret, step used)."""
    secret = page.get_attribute("#totp-secret", "data-secret")
    step, code = next_code(secret, -1)
    page.fill("#code", code)
    page.click("form:has(#code) button[type=submit]")
    page.wait_for_selector("#recovery-codes")
    page.check("#stored")
    page.click("#continue")
    return secret, step


def sign_out(page):
    page.click("form.signout button")
    page.wait_for_url("**/login?out=1")
