"""The web UI's layout and accessibility in Chromium on a phone (390×844)
and a desktop (1280×900), in the light and the dark colour scheme: no page
scrolls sideways, no button or link leaves the viewport, every row's buttons
sit inside their row, table rows keep their lines, every control shows a
focus ring of at least 3:1 against its surroundings (and every text field
a border of 3:1), axe-core finds no
serious or critical violation, and the setup wizard stays in its own steps.

`test_every_page_for_every_role_at_both_widths_in_both_schemes` walks every
page signed out and as a user, an admin and the owner, with one browser
session per role and width; its screenshots (target/screenshots/pages) and
axe-core's findings (target/screenshots/axe.json) are kept as evidence."""

import json
import time

from conftest import OWNER, PASSWORD
from web import (SHOTS, axe_violations, chromium, claim_in_wizard, color_scheme, new_page,  # noqa: F401
                 next_code, sign_in, sign_in_past_offer, with_axe)

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}
USER_PW = "violet-harbour-lantern-73"


def no_sideways_scroll(page, where):
    widths = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert widths[0] <= widths[1], f"{where}: the page is {widths[0]} px wide in a {widths[1]} px viewport"


def inside(page, selector, where, container=None, text=""):
    """Every visible element matching the CSS `selector` (and holding
    `text`) lies inside the viewport, and inside `container`, a selector of
    its ancestor, when given. Returns how many there are."""
    found = page.evaluate(
        """([sel, cont, text]) => Array.from(document.querySelectorAll(sel))
            .filter(e => e.checkVisibility() && e.textContent.includes(text))
            .map(e => {
              const r = e.getBoundingClientRect();
              const c = cont ? e.closest(cont).getBoundingClientRect() : null;
              return {text: e.textContent.trim(), left: r.left, right: r.right, top: r.top, bottom: r.bottom,
                      c: c && {left: c.left, right: c.right, top: c.top, bottom: c.bottom}};
            })""",
        [selector, container, text],
    )
    width = page.evaluate("window.innerWidth")
    for b in found:
        assert b["left"] >= 0 and b["right"] <= width + 0.5, f"{where}: {b['text']!r} at {b['left']}..{b['right']} leaves the {width} px viewport"
        if b["c"]:
            c = b["c"]
            assert c["left"] - 0.5 <= b["left"] and b["right"] <= c["right"] + 0.5 and c["top"] - 0.5 <= b["top"] and b["bottom"] <= c["bottom"] + 0.5, \
                f"{where}: {b['text']!r} {b} sticks out of its {container}"
    return len(found)


def photo(page, name):
    """A full-page screenshot at the current viewport."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def signed_in_owner(chromium, box):
    page = new_page(chromium, box)
    sign_in_past_offer(page, OWNER, PASSWORD)
    return page


def test_file_rows_keep_their_lines_and_buttons_at_both_widths(box, chromium):
    page = signed_in_owner(chromium, box)
    page.fill("#new-folder", "Quarterly reports")
    page.click("form[action='/files/mkdir'] button")
    page.wait_for_selector(".notice.ok")
    page.set_input_files("#upload-files", files=[
        {"name": "annual-budget-overview-2026.pdf", "mimeType": "application/pdf", "buffer": b"%PDF-1.4\n" * 50},
    ])
    page.wait_for_selector("table.files >> text=annual-budget-overview-2026.pdf")
    for size in (DESKTOP, PHONE):
        page.set_viewport_size(size)
        where = f"files at {size['width']} px"
        no_sideways_scroll(page, where)
        rows = page.evaluate(
            """() => Array.from(document.querySelectorAll('table.files tr')).map(tr => {
                const r = tr.getBoundingClientRect();
                const cells = Array.from(tr.children).filter(c => c.getClientRects().length);
                return {row: [r.left, r.right, r.height],
                        cells: cells.map(c => [getComputedStyle(c).display, c.getBoundingClientRect().left,
                                               c.getBoundingClientRect().right, c.getBoundingClientRect().height])};
            })"""
        )
        for row in rows:
            left, right, height = row["row"]
            assert all(c[0] == "table-cell" for c in row["cells"]), f"{where}: {row}"
            # The cells fill the row from edge to edge, each as tall as it:
            # the line under a row runs the full width.
            assert abs(row["cells"][0][1] - left) < 1 and abs(row["cells"][-1][2] - right) < 1, f"{where}: {row}"
            assert all(abs(c[3] - height) < 1 for c in row["cells"]), f"{where}: {row}"
        assert inside(page, "table.files tbody td.actions summary, table.files tbody td.actions button", where, "tr") >= 3

    # On a phone with Rename open, the name keeps whole words on a line.
    page.set_viewport_size(PHONE)
    row = page.locator("tr", has_text="annual-budget-overview-2026.pdf")
    row.locator("details.rename summary").click()
    name = row.locator("td.name .entry span").bounding_box()
    assert name["width"] >= 110, f"the name is squeezed to {name['width']} px"
    assert name["height"] <= 3 * 24, f"the name wraps into {name['height']} px of lines"
    no_sideways_scroll(page, "files at 390 px, Rename open")
    photo(page, "30-files-rename-phone")
    inside(page, "table.files tbody td.actions button, table.files tbody td.actions input", "files, Rename open", "tr")
    page.context.close()


def test_no_page_scrolls_sideways_on_a_phone_and_buttons_stay_on_screen(box, chromium):
    box.add_user("alice", "user", USER_PW)
    box.token("alice")
    box.token(OWNER)
    other = signed_in_owner(chromium, box)
    page = signed_in_owner(chromium, box)
    page.goto("/security")
    page.fill("#label", "a rather long label for the laptop's rclone")
    page.click("form[action='/security/tokens'] button[type=submit]")
    page.set_viewport_size(PHONE)
    for path in ("/files", "/security", "/admin/users", "/admin/users/alice", "/admin/groups",
                 "/admin/policy", "/admin/audit", "/admin/system", "/api"):
        page.goto(path)
        photo(page, "31-phone" + path.replace("/", "-"))
        no_sideways_scroll(page, path)
        inside(page, "main button, main a.button, main summary", path)
        inside(page, "header button", path)
    page.goto("/security")
    assert inside(page, "button", "/security", text="Sign out") >= 3  # the top bar's and two sessions'
    assert inside(page, "main button", "/security", text="Revoke") >= 2
    page.goto("/admin/users/alice")
    assert inside(page, "main button", "/admin/users/alice", text="Revoke") >= 1
    for p in (page, other):
        p.context.close()


def test_the_wizard_keeps_to_its_steps_and_offers_the_otpauth_link(wizard_box, chromium):
    box = wizard_box
    page = new_page(chromium, box)
    with_axe(page.context)
    findings, problems = {}, []
    page.set_viewport_size(PHONE)
    page.goto("/setup")
    no_sideways_scroll(page, "/setup")
    for width, size in WIDTHS:
        page.set_viewport_size(size)
        check_page(page, "wizard", width, "setup", findings, problems)
    page.set_viewport_size(PHONE)
    claim_in_wizard(page, box, OWNER, PASSWORD)
    for width, size in WIDTHS:
        page.set_viewport_size(size)
        check_page(page, "wizard", width, "enrol", findings, problems)
    page.set_viewport_size(PHONE)
    assert not problems, "\n".join(problems)
    # Step 2 of the wizard, not the app with its admin menus.
    assert page.locator("ol.steps li.now:has-text('Two-factor')").count() == 1
    assert page.locator("nav.main").count() == 0
    no_sideways_scroll(page, "enrolment")
    # A phone cannot scan its own screen: a link and a Copy button.
    uri = page.get_attribute("#otpauth-link", "href")
    secret = page.get_attribute("#totp-secret", "data-secret")
    assert uri.startswith("otpauth://totp/") and f"secret={secret}" in uri, uri
    assert page.input_value("#otpauth-uri") == uri
    assert page.locator("button[data-copy='otpauth-uri']:has-text('Copy')").count() == 1
    inside(page, "main button, main a", "enrolment")
    photo(page, "32-wizard-enrol-phone")
    # The recovery codes, the wizard's last page.
    _, code = next_code(secret, -1)
    page.fill("#code", code)
    page.click("form:has(#code) button[type=submit]")
    page.wait_for_selector("#recovery-codes")
    for width, size in WIDTHS:
        page.set_viewport_size(size)
        check_page(page, "wizard", width, "recovery-codes", findings, problems)
    (SHOTS / "axe-wizard.json").write_text(json.dumps(findings, indent=1))
    assert not problems, "\n".join(problems)
    page.context.close()


# ---------------------------------------------------------------------------
# Every page, every role, both widths, both colour schemes.

SCHEMES = ("light", "dark")
WIDTHS = (("phone", PHONE), ("desktop", DESKTOP))
USER_PAGES = ["/files", "/files?path=%2FQuarterly%20reports", "/security", "/security/totp", "/api",
              "/no-such-page", "/admin/users"]  # the last: refused, inside the app
ADMIN_PAGES = ["/files", "/security", "/admin/users", "/admin/users/alice", "/admin/groups",
               "/admin/policy", "/admin/audit", "/api", "/no-such-page", "/admin/system"]
OWNER_PAGES = ADMIN_PAGES + ["/admin/users/owner", "/security/totp"]

# Every control a keyboard reaches, and every box a finger presses.
FOCUSABLE = ("a[href], button, input:not([type=hidden]), select, textarea, summary, "
             "[tabindex]:not([tabindex='-1'])")
PRESSABLE = "button, a[href], summary, input[type=submit], label.button"

FOCUS_PROBE = """(sel) => {
  const rgba = c => { const m = c.match(/[\\d.]+/g).map(Number); return [m[0], m[1], m[2], m.length > 3 ? m[3] : 1]; };
  const lum = ([r, g, b]) => { const f = v => (v /= 255) <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
                               return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b); };
  const ratio = (a, b) => { const [x, y] = [lum(a), lum(b)].sort((p, q) => q - p); return (x + 0.05) / (y + 0.05); };
  // The colours around an element, 3.5 px outside each side (where the
  // ring is drawn): the backgrounds under that point, blended.
  const base = matchMedia('(prefers-color-scheme: dark)').matches ? [0, 0, 0] : [255, 255, 255];
  const under = (e, x, y) => {
    const layers = [];
    for (const a of document.elementsFromPoint(x, y)) {
      if (a === e || e.contains(a)) continue;
      const c = rgba(getComputedStyle(a).backgroundColor);
      if (c[3] > 0) layers.push(c);
      if (c[3] >= 1) break;
    }
    let out = base;
    for (const c of layers.reverse()) out = out.map((v, i) => v * (1 - c[3]) + c[i] * c[3]);
    return out;
  };
  const around = e => {
    const r = e.getBoundingClientRect(), d = 3.5, mx = (r.left + r.right) / 2, my = (r.top + r.bottom) / 2;
    return [[r.left - d, my], [r.right + d, my], [mx, r.top - d], [mx, r.bottom + d]]
      .filter(([x, y]) => x >= 0 && y >= 0 && x < innerWidth && y < innerHeight)
      .map(([x, y]) => under(e, x, y));
  };
  const FIELDS = 'input:not([type=checkbox]):not([type=radio]):not([type=file]), select, textarea';
  const bad = [];
  let count = 0;
  for (const e of document.querySelectorAll(sel)) {
    if (!e.checkVisibility() || e.disabled) continue;
    // A text field's border is what shows where it is (WCAG 1.4.11).
    if (e.matches(FIELDS) && e.offsetWidth > 2) {
      const b = getComputedStyle(e).borderTopColor;
      const c = Math.min(...around(e).map(x => ratio(rgba(b), x)));
      if (c < 3) bad.push((e.id ? '#' + e.id : e.tagName.toLowerCase()) + ': border ' + b + ' at ' + c.toFixed(2) + ':1');
    }
    e.focus();
    if (document.activeElement !== e) continue;
    const r = e.getBoundingClientRect();
    // A visually hidden input (the file picker) shows its ring on its label.
    const shown = r.width > 2 && r.height > 2 ? e : Array.from(e.labels || []).find(l => l.checkVisibility());
    if (!shown) continue;
    count++;
    const s = getComputedStyle(shown);
    const name = (e.id ? '#' + e.id : e.tagName.toLowerCase()) + ' ' + (e.textContent || e.name || '').trim().slice(0, 30);
    if (!e.matches(':focus-visible')) { bad.push(name + ': no :focus-visible'); continue; }
    if (s.outlineStyle === 'none' || parseFloat(s.outlineWidth) < 2) { bad.push(name + ': no outline'); continue; }
    const c = Math.min(...around(shown).map(b => ratio(rgba(s.outlineColor), b)));
    if (c < 3) bad.push(name + ': ring ' + s.outlineColor + ' at ' + c.toFixed(2) + ':1');
  }
  document.activeElement && document.activeElement.blur();
  return {count, bad};
}"""

PRESS_PROBE = """(sel) => Array.from(document.querySelectorAll(sel))
  .filter(e => e.checkVisibility() && e.getClientRects().length && !e.closest('.skip'))
  .map(e => [e.getBoundingClientRect(), e])
  .filter(([r, e]) => r.width > 0 && (r.left < -0.5 || r.right > window.innerWidth + 0.5))
  .map(([r, e]) => `${e.tagName.toLowerCase()} "${e.textContent.trim().slice(0, 40)}" at ${Math.round(r.left)}..${Math.round(r.right)}`)"""


def check_page(page, role, width, name, findings, problems):
    """Checks the page at hand in both colour schemes: screenshots, no
    sideways scrolling, every button and link inside the viewport, the
    focus ring, and axe-core."""
    page.wait_for_load_state("load")
    (SHOTS / "pages").mkdir(parents=True, exist_ok=True)
    # One key press, so that focus() afterwards shows :focus-visible as
    # keyboard focus does.
    page.keyboard.press("Shift")
    for scheme in SCHEMES:
        color_scheme(page, scheme)
        where = f"{role} {width} {scheme} {name}"
        page.screenshot(path=str(SHOTS / "pages" / f"{role}-{width}-{scheme}-{name}.png"), full_page=True)
        scroll = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
        if scroll[0] > scroll[1]:
            problems.append(f"{where}: the page is {scroll[0]} px wide in a {scroll[1]} px viewport")
        problems += [f"{where}: {b} leaves the viewport" for b in page.evaluate(PRESS_PROBE, PRESSABLE)]
        focus = page.evaluate(FOCUS_PROBE, FOCUSABLE)
        if focus["count"] == 0:
            problems.append(f"{where}: no focusable control found")
        problems += [f"{where}: focus {b}" for b in focus["bad"]]
        found = axe_violations(page)
        findings[where] = found
        problems += [f"{where}: axe {v['impact']} {v['id']} ({v['help']}) at {v['targets']}"
                     for v in found if v["impact"] in ("serious", "critical")]


def page_name(path):
    return path.strip("/").replace("/", "-").replace("?path=%2F", "-in-").replace("%20", "_") or "root"


def enter(page, role, check, alice_secret, steps):
    """Signs the role's account in, checking each sign-in page on the way:
    the user (enrolled) through the code page, the admin (whom the policy
    requires to enrol) through the forced enrolment and its recovery codes,
    the owner through the enrolment offer."""
    if role == "user":
        sign_in(page, "alice", USER_PW)
        page.wait_for_url("**/login/code")
        step, code = next_code(alice_secret, steps[-1])
        steps.append(step)
        page.fill("#code", code)
        page.click("button[type=submit]")
    elif role == "admin":
        sign_in(page, "bob", USER_PW)
        page.wait_for_url("**/login/enrol")
        check("login-enrol")
        _, code = next_code(page.get_attribute("#totp-secret", "data-secret"), -1)
        page.fill("#code", code)
        page.click("form:has(#code) button[type=submit]")
        page.wait_for_selector("#recovery-codes")
        check("login-recovery-codes")
        page.check("#stored")
        page.click("#continue")
    else:
        sign_in(page, OWNER, PASSWORD)
        page.wait_for_url("**/login/offer")
        check("login-offer")
        page.click("a:has-text('Skip this time')")
    page.wait_for_url("**/files*")


def fill_files(page):
    """A folder and a file with a long name, for the files pages."""
    page.fill("#new-folder", "Quarterly reports")
    page.click("form[action='/files/mkdir'] button")
    page.wait_for_selector(".notice.ok")
    page.set_input_files("#upload-files", files=[
        {"name": "annual-budget-overview-2026-final-version.pdf", "mimeType": "application/pdf",
         "buffer": b"%PDF-1.4\n" * 50}])
    page.wait_for_selector("table.files >> text=annual-budget-overview-2026-final-version.pdf")


def test_every_page_for_every_role_at_both_widths_in_both_schemes(box, chromium):
    box.add_user("alice", "user", USER_PW)
    alice_secret, _ = box.enrol("alice")
    steps = [int(time.time()) // 30 - 1]  # the step the enrolment used, or a later one
    box.add_user("bob", "admin", USER_PW)
    box.cli("policy", "set", "mfa.required_for=admin")
    box.cli("group", "add", "team", "--home-template", "team/${USER}")
    box.token(OWNER)
    box.token("alice")
    findings, problems = {}, []
    roles = (("signed-out", []), ("user", USER_PAGES), ("admin", ADMIN_PAGES), ("owner", OWNER_PAGES))
    for role, pages in roles:
        for width, size in WIDTHS:
            context = chromium.new_context(base_url=box.url, ignore_https_errors=True, viewport=size)
            with_axe(context)
            page = context.new_page()
            page.set_default_timeout(20000)
            check = lambda name: check_page(page, role, width, name, findings, problems)  # noqa: E731
            if role == "signed-out":
                for path in ("/login", "/api", "/no-such-page"):
                    answer = page.goto(path)
                    check(page_name(path))
                # The 404 of a signed-out visitor is a plain card.
                assert answer.status == 404 and page.locator("nav.main").count() == 0
                # A wrong password, then the code step of an enrolled account.
                sign_in(page, "alice", "not-the-password")
                page.wait_for_selector(".notice.error")
                check("login-refused")
                sign_in(page, "alice", USER_PW)
                page.wait_for_url("**/login/code")
                check("login-code")
                context.close()
                continue
            if role == "admin":
                box.cli("mfa", "reset", "bob", check=False)  # each width sees the forced enrolment
            enter(page, role, check, alice_secret, steps)
            if role == "user" and width == "phone":
                fill_files(page)
            for path in pages:
                answer = page.goto(path)
                check(page_name(path))
                if path == "/no-such-page":
                    # A signed-in user's 404 keeps the app's navigation.
                    assert answer.status == 404, answer.status
                    assert page.locator("nav.main a[href='/files']").count() == 1
                    assert page.locator("form.signout").count() == 1
                if role == "user" and path == "/files":
                    page.locator("details.rename summary").first.click()
                    check("files-rename-open")
            context.close()
    (SHOTS / "axe.json").write_text(json.dumps(findings, indent=1))
    assert not problems, f"{len(problems)} problems:\n" + "\n".join(problems)
