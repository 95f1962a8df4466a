"""The web UI's layout in Chromium on a phone (390×844) and a desktop
(1280×900): no page scrolls sideways, every row's buttons sit inside their
row and the viewport, table rows keep their lines, and the setup wizard
stays in its own steps."""

from conftest import OWNER, PASSWORD
from web import SHOTS, chromium, claim_in_wizard, new_page, sign_in_past_offer  # noqa: F401

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
    page.set_viewport_size(PHONE)
    page.goto("/setup")
    no_sideways_scroll(page, "/setup")
    claim_in_wizard(page, box, OWNER, PASSWORD)
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
    page.context.close()
