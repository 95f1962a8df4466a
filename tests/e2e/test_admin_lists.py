"""The administrator's lists at the size a company fills them: the users
list searched, filtered and paged, with each account's networks and
two-factor state; the audit page in the browser's own time zone, and its
export as CSV and JSON (checked by parsing both)."""

import csv
import io
import json
import re

from conftest import OWNER, PASSWORD, ssh_password_login
from web import chromium, new_page, sign_in_past_offer  # noqa: F401


def test_users_are_searched_filtered_and_paged(box, chromium):
    for i in range(120):
        box.cli("user", "add", f"u{i:03d}")
    box.cli("user", "set", "u007", "--ip-allow", "10.0.0.0/8", "--ip-deny", "10.9.0.0/16")
    box.cli("user", "disable", "u042")
    page = new_page(chromium, box)
    sign_in_past_offer(page, OWNER, PASSWORD)
    page.goto("/admin/users")
    rows = page.locator("table tbody tr")
    assert rows.count() == 50
    assert "121 accounts, 1–50 shown." in page.inner_text("[role=status]")
    page.click("a[rel=next]")
    assert rows.count() == 50 and "Page 2 of 3" in page.inner_text("nav.pager")
    page.click("a[rel=next]")
    assert rows.count() == 21 and page.locator("a[rel=next]").count() == 0
    # Search by name, any case; the pager keeps the search.
    page.fill("#f_q", "U04")
    page.click("form[role=search] button")
    assert rows.count() == 10
    assert "10 of 121 accounts match." in page.inner_text("[role=status]")
    page.select_option("#f_state", "disabled")
    page.click("form[role=search] button")
    assert rows.count() == 1 and "u042" in rows.first.inner_text()
    # Networks and two-factor state in the list.
    page.goto("/admin/users?q=u007")
    assert "only 10.0.0.0/8; not 10.9.0.0/16" in rows.first.inner_text()
    assert "off" in rows.first.inner_text().lower()
    # Out-of-range and hostile parameters give a page, never an error.
    for query in ["page=-5", "page=99999999999999999999", "page=abc", "state=%00", "q=" + "x" * 5000,
                  "q=%3Cscript%3Ealert(1)%3C/script%3E"]:
        r = page.goto(f"/admin/users?{query}")
        assert r.status == 200, query
        assert "<script>alert" not in page.content(), query


def test_audit_in_local_time_and_exported_as_csv_and_json(box, chromium):
    for name in ("ann", "ben", "cy"):
        box.add_user(name)
    page = new_page(chromium, box)
    page.emulate_media(color_scheme="light")
    sign_in_past_offer(page, OWNER, PASSWORD)
    page.goto("/admin/audit?event=account_created")
    cells = page.locator("table.audit tbody time")
    assert cells.count() >= 3
    # The page script shows the browser's own zone, with seconds; UTC stays the tooltip.
    shown = cells.first.inner_text()
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d( \S+)?", shown), shown
    assert cells.first.get_attribute("title").endswith("UTC")
    with page.expect_download() as d:
        page.click("a:has-text('CSV')")
    text = open(d.value.path(), encoding="utf-8").read()
    assert d.value.suggested_filename.startswith("coffer-audit-") and d.value.suggested_filename.endswith(".csv")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert {r["account"] for r in rows} >= {"ann", "ben", "cy"}
    assert {r["event"] for r in rows} == {"account_created"}
    assert all(r["time_utc"].endswith("Z") for r in rows)
    with page.expect_download() as d:
        page.click("a:has-text('JSON')")
    records = json.load(open(d.value.path(), encoding="utf-8"))
    assert len(records) == len(rows)
    assert [r["seq"] for r in records] == [int(r["seq"]) for r in rows]
    # A bad filter or format is a clear page, not a file.
    for query in ["format=xml", "format=csv&since=yesterday", "format=csv&event=nonsense"]:
        r = page.goto(f"/admin/audit/export?{query}")
        assert r.status == 400, (query, r.status)


def test_the_last_sign_in_is_shown_with_its_address_and_method(box, chromium):
    box.add_user("dora")
    assert "last login:  never" in box.cli("user", "show", "dora").stdout
    assert ssh_password_login(box, "dora", PASSWORD, source="127.0.0.3")
    shown = box.cli("user", "show", "dora").stdout
    assert re.search(r"last login:  \S+Z from 127\.0\.0\.3 \(ssh, password\)", shown), shown
    # A refused login does not count.
    assert not ssh_password_login(box, "dora", "wrong-password", source="127.0.0.2")
    assert "from 127.0.0.3" in box.cli("user", "show", "dora").stdout
    page = new_page(chromium, box)
    sign_in_past_offer(page, OWNER, PASSWORD)
    page.goto("/admin/users?q=dora")
    row = page.locator("table tbody tr").first.inner_text()
    assert "from 127.0.0.3 (ssh, password)" in row, row
    page.goto("/admin/users/dora")
    assert "from 127.0.0.3 (ssh, password)" in page.inner_text("main")

