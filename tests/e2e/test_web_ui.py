"""The web UI in a real browser (Debian's Chromium, headless, Playwright):
the claim wizard, TOTP enrolment, login with a code, replay refusal, files,
administration, the enrolment offer, forced enrolment, lockout and 403s.
Every page is photographed on a phone and a desktop viewport."""

import os
import re
import time

from conftest import PASSWORD
from web import (  # noqa: F401
    chromium, claim_in_wizard, confirm_enrolment, new_page, next_code, shoot, sign_in, sign_in_past_offer,
    sign_in_with_code, sign_out,
)

NEW_USER_PW = "violet-harbour-lantern-73"


def test_claim_enrol_login_files_and_admin(wizard_box, chromium):
    box = wizard_box
    page = new_page(chromium, box)
    dialogs = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.accept()))

    # The start page of an unclaimed box is the wizard.
    page.goto("/")
    page.wait_for_url("**/setup")
    shoot(page, "01-setup")

    # A weak password is refused with the policy's reason and the strength.
    code = box.claim_code()
    page.fill("#claim_code", code)
    page.fill("#username", "owner")
    page.fill("#password", "password123")
    page.fill("#password2", "password123")
    page.click("button[type=submit]")
    assert "Password refused" in page.inner_text(".notice.error")
    assert page.locator("meter#strength").count() == 1
    shoot(page, "02-setup-refused")

    # A wrong claim code is refused.
    page.fill("#claim_code", "AAAA-AAAA-AAAA")
    page.fill("#password", PASSWORD)
    page.fill("#password2", PASSWORD)
    page.click("button[type=submit]")
    assert "claim code" in page.inner_text(".notice.error")

    # The claim, then enrolment right away.
    page.fill("#claim_code", code)
    page.fill("#password", PASSWORD)
    page.fill("#password2", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/security/totp?setup=1")
    assert page.locator(".qr svg").count() == 1
    shoot(page, "03-enrol")

    # A wrong code keeps the same secret on the page.
    secret = page.get_attribute("#totp-secret", "data-secret")
    page.fill("#code", "000000")
    page.click("form[action='/security/totp'] button[type=submit]")
    assert page.locator(".notice.error").count() == 1
    assert page.get_attribute("#totp-secret", "data-secret") == secret
    step, code = next_code(secret, -1)
    page.fill("#code", code)
    page.click("form[action='/security/totp'] button[type=submit]")
    page.wait_for_selector("#recovery-codes")
    shoot(page, "04-recovery-codes")
    codes = [c.strip() for c in page.locator("#recovery-codes li").all_inner_texts()]
    assert len(codes) == 10

    # Download as text; Continue waits for "I have stored them".
    with page.expect_download() as d:
        page.click("#download-codes")
    download = d.value
    assert download.suggested_filename == "coffer-recovery-codes.txt"
    text = open(download.path()).read()
    assert all(c in text for c in codes)
    assert page.locator("#continue").is_disabled()
    page.check("#stored")
    assert page.locator("#continue").is_enabled()
    page.click("#continue")
    page.wait_for_url("**/files*")
    shoot(page, "05-files-empty")

    # The wizard is gone for good.
    gone = page.request.get("/setup", max_redirects=0)
    assert gone.status == 303 and gone.headers["location"] == "/login"

    # Upload with progress (streamed to the API), then download.
    data = os.urandom(3 * 1024 * 1024 + 17)
    page.set_input_files("#upload-files", files=[{"name": "hello.bin", "mimeType": "application/octet-stream", "buffer": data}])
    page.wait_for_selector("table.files >> text=hello.bin")
    with page.expect_download() as d:
        page.click("table.files a:has-text('hello.bin')")
    assert open(d.value.path(), "rb").read() == data

    # New folder, into it and back by the breadcrumbs.
    page.fill("#new-folder", "Reports 2026")
    page.click("form[action='/files/mkdir'] button")
    page.wait_for_selector(".notice.ok")
    shoot(page, "06-files")
    page.click("table.files a:has-text('Reports 2026')")
    page.wait_for_selector("nav.crumbs [aria-current]:has-text('Reports 2026')")
    shoot(page, "07-folder")
    page.click("nav.crumbs a:has-text('Home')")

    # Rename, then delete (confirmed).
    row = page.locator("tr", has_text="hello.bin")
    row.locator("details.rename summary").click()
    row.locator("input[name=to]").fill("renamed.bin")
    row.locator("details.rename button").click()
    page.wait_for_selector("table.files >> text=renamed.bin")
    page.locator("tr", has_text="renamed.bin").locator("button.danger").click()
    page.wait_for_selector(".notice.ok:has-text('deleted')")
    assert page.locator("table.files >> text=renamed.bin").count() == 0
    assert any("Delete" in m for m in dialogs)

    # Security page; an access token is shown once.
    page.goto("/security")
    shoot(page, "08-security")
    page.fill("#label", "laptop rclone")
    page.click("form[action='/security/tokens'] button[type=submit]")
    value = page.input_value("#token-value")
    assert value.startswith("cft_")
    shoot(page, "09-token")

    # Log out; log in with password and code.
    page.goto("/files")
    sign_out(page)
    shoot(page, "10-login")
    sign_in(page, "owner", PASSWORD)
    page.wait_for_url("**/login/code")
    shoot(page, "11-code")
    step, code = next_code(secret, step)
    page.fill("#code", code)
    page.click("button[type=submit]")
    page.wait_for_url("**/files*")

    # The same code again is refused with a clear message.
    sign_out(page)
    sign_in(page, "owner", PASSWORD)
    page.wait_for_url("**/login/code")
    page.fill("#code", code)
    page.click("button[type=submit]")
    message = page.inner_text(".notice.error")
    assert "already used" in message, message
    shoot(page, "12-code-replayed")
    # A recovery code works instead, typed at the same code page: a refused
    # code does not ask for the password again.
    assert page.url.endswith("/login/code"), page.url
    page.fill("#code", codes[0])
    page.click("button[type=submit]")
    page.wait_for_url("**/files*")

    # Admin: create a user, reset their MFA.
    page.goto("/admin/users")
    shoot(page, "13-users")
    page.fill("#username", "alice")
    page.fill("#password", NEW_USER_PW)
    page.select_option("#role", "user")
    page.click("form[method=post][action='/admin/users'] button[type=submit]")
    page.wait_for_url("**/admin/users/alice")
    assert "created" in page.inner_text(".notice.ok")
    box.enrol("alice")
    page.reload()
    shoot(page, "14-user")
    page.click("button:has-text('Reset two-factor')")
    page.wait_for_selector(".notice.ok:has-text('reset')")
    assert box.audit(user="alice", event="mfa_reset")
    assert page.locator("button:has-text('Reset two-factor')").count() == 0

    # Groups, policy, audit, system, API.
    page.goto("/admin/groups")
    page.fill("#new_name", "staff")
    page.click("form:has(#new_name) button[type=submit]")
    page.wait_for_selector("h2:has-text('staff')")
    shoot(page, "15-groups")
    page.goto("/admin/policy")
    page.fill("[id='lockout.max_failures']", "6")
    page.click("button:has-text('Save policy')")
    page.wait_for_selector(".notice.ok:has-text('Policy saved')")
    assert "lockout.max_failures=6" in box.cli("policy", "show").stdout.replace(" ", "")
    shoot(page, "16-policy")
    page.goto("/admin/audit?account=alice")
    assert page.locator("table.audit tbody tr").count() >= 2
    shoot(page, "17-audit")
    page.goto("/admin/system")
    assert re.search(r"([0-9A-F]{2}:){31}[0-9A-F]{2}", page.inner_text("code.fingerprint"))
    shoot(page, "18-system")
    page.goto("/api")
    shoot(page, "19-api")
    page.context.close()


def test_enrolment_offer_skip_and_dont_ask_again(box, chromium):
    box.add_user("bob", "user", NEW_USER_PW)
    page = new_page(chromium, box)
    sign_in(page, "bob", NEW_USER_PW)
    page.wait_for_url("**/login/offer")
    shoot(page, "20-offer")
    page.click("a:has-text('Skip this time')")
    page.wait_for_url("**/files*")
    sign_out(page)
    sign_in(page, "bob", NEW_USER_PW)
    page.wait_for_url("**/login/offer")
    page.click("button:has-text(\"Don't ask again\")")
    page.wait_for_url("**/files*")
    assert "won't ask again" in page.inner_text(".notice.ok")
    assert box.audit(user="bob", event="enrolment_skipped")
    sign_out(page)
    sign_in(page, "bob", NEW_USER_PW)
    page.wait_for_url("**/files*")
    # Set up later from the security page.
    page.goto("/security")
    page.click("a:has-text('Set up two-factor sign-in')")
    confirm_enrolment(page)
    page.wait_for_url("**/security*")
    assert page.locator(".badge.good:has-text('On')").count() == 1
    page.context.close()


def test_required_mfa_forces_enrolment(box, chromium):
    box.cli("policy", "set", "mfa.required_for=user")
    box.add_user("carol", "user", NEW_USER_PW)
    page = new_page(chromium, box)
    sign_in(page, "carol", NEW_USER_PW)
    page.wait_for_url("**/login/enrol")
    shoot(page, "21-forced-enrol")
    # Nothing else is reachable before the enrolment.
    page.goto("/files")
    page.wait_for_url("**/login/enrol")
    assert page.locator("a:has-text('Skip for now')").count() == 0
    secret = page.get_attribute("#totp-secret", "data-secret")
    page.fill("#code", "000000")
    page.click("button[type=submit]")
    assert page.get_attribute("#totp-secret", "data-secret") == secret
    confirm_enrolment(page)
    page.wait_for_url("**/files*")
    page.context.close()


def test_lockout_message_and_admin_pages_refused(box, chromium):
    box.add_user("dave", "user", NEW_USER_PW)
    box.cli("policy", "set", "mfa.allowed=false")
    page = new_page(chromium, box)
    for _ in range(5):
        sign_in(page, "dave", "not-the-password")
        assert "wrong user name, password" in page.inner_text(".notice.error")
    sign_in(page, "dave", NEW_USER_PW)
    message = page.inner_text(".notice.error")
    assert re.search(r"Too many failed attempts; try again in \d+ minutes\.", message), message
    shoot(page, "22-locked")
    box.cli("unlock", "dave")

    # A user is refused the admin pages with 403.
    sign_in(page, "dave", NEW_USER_PW)
    page.wait_for_url("**/files*")
    for path in ("/admin/users", "/admin/groups", "/admin/policy", "/admin/audit", "/admin/system"):
        response = page.goto(path)
        assert response.status == 403, path
        assert page.locator("a:has-text('Users')").count() == 0
    shoot(page, "23-forbidden")
    response = page.goto("/no/such/page")
    assert response.status == 404
    page.context.close()


def test_a_new_phone_and_new_recovery_codes_need_a_code(box, chromium):
    box.add_user("erin", "user", NEW_USER_PW)
    secret, recovery = box.enrol("erin")
    page = new_page(chromium, box)
    sign_in(page, "erin", NEW_USER_PW)
    page.wait_for_url("**/login/code")
    step, code = next_code(secret, int(time.time()) // 30 - 1)
    page.fill("#code", code)
    page.click("button[type=submit]")
    page.wait_for_url("**/files*")

    # New recovery codes: the code box is required, a wrong code is refused,
    # a recovery code proves it.
    page.goto("/security")
    assert page.get_attribute("#recovery_code", "required") is not None
    # It asks first: answering No sends nothing, so the old codes stay.
    asked = []
    page.once("dialog", lambda d: (asked.append(d.message), d.dismiss()))
    page.fill("#recovery_code", recovery[1])
    page.click("form[action='/security/recovery'] button[type=submit]")
    assert asked and "earlier recovery code stops working" in asked[0], asked
    assert page.locator("#recovery-codes").count() == 0
    page.on("dialog", lambda d: d.accept())
    page.fill("#recovery_code", "aaaa-bbbb-cccc-dddd")
    page.click("form[action='/security/recovery'] button[type=submit]")
    assert "not valid" in page.inner_text(".notice.error")
    assert page.locator("#recovery-codes").count() == 0
    page.fill("#recovery_code", recovery[0])
    page.click("form[action='/security/recovery'] button[type=submit]")
    page.wait_for_selector("#recovery-codes")
    assert page.locator("#recovery-codes li").count() == 10
    shoot(page, "24-new-recovery-codes")

    # A new phone: not without a code, then the next code of the old app.
    page.goto("/security/totp")
    assert page.locator(".qr svg").count() == 0
    assert page.get_attribute("#replace_code", "required") is not None
    page.fill("#replace_code", code)
    page.click("form[action='/security/totp/replace'] button[type=submit]")
    assert "already used" in page.inner_text(".notice.error")
    _, code = next_code(secret, step)
    page.fill("#replace_code", code)
    page.click("form[action='/security/totp/replace'] button[type=submit]")
    page.wait_for_selector(".qr svg")
    new_secret = page.get_attribute("#totp-secret", "data-secret")
    assert new_secret and new_secret != secret
    _, new_code = next_code(new_secret, -1)
    page.fill("#code", new_code)
    page.click("form[action='/security/totp'] button[type=submit]")
    page.wait_for_selector("#recovery-codes")
    events = {e["event"] for e in box.audit(user="erin")}
    assert {"code_rejected", "code_replayed", "recovery_code_used", "enrolment_confirmed"} <= events, events
    page.context.close()


def test_a_session_opened_with_an_access_token_manages_no_credentials(box, chromium):
    box.add_user("fred", "user", NEW_USER_PW)
    token = box.token("fred")
    page = new_page(chromium, box)
    sign_in(page, "fred", token)
    page.wait_for_url("**/files*")
    page.goto("/security")
    assert "access token cannot manage credentials" in page.inner_text("#token-session")
    assert page.locator("form[action='/security/tokens']").count() == 0
    assert page.locator("form[action='/security/password']").count() == 0
    page.context.close()


def test_ended_sessions_are_not_listed_and_the_system_page_counts_signed_in_ones(box, chromium):
    box.add_user("gina", "user", NEW_USER_PW)
    page = new_page(chromium, box)
    sign_in_past_offer(page, "gina", NEW_USER_PW)
    # The enrolment moves this browser to a new session; the old one ended.
    page.goto("/security/totp")
    secret, step = confirm_enrolment(page)
    page.wait_for_url("**/security*")
    rows = page.locator("section:has(#ses-h) tbody tr")
    assert rows.count() == 1, rows.all_inner_texts()
    assert "this browser" in rows.first.inner_text().lower()
    # A second browser signs in, then is signed out from the first.
    other = new_page(chromium, box)
    step = sign_in_with_code(other, "gina", NEW_USER_PW, secret, step)
    page.reload()
    assert rows.count() == 2, rows.all_inner_texts()
    rows.filter(has_not_text="this browser").locator("button:has-text('Sign out')").click()
    page.wait_for_url("**/security*")
    assert rows.count() == 1, rows.all_inner_texts()
    # A new phone: the replacement moves this browser to a new session too.
    page.goto("/security/totp")
    step, code = next_code(secret, step)
    page.fill("#replace_code", code)
    page.click("form[action='/security/totp/replace'] button[type=submit]")
    confirm_enrolment(page)
    page.goto("/security")
    assert rows.count() == 1, rows.all_inner_texts()

    # The owner's system page counts signed-in sessions only: gina and the
    # owner, not the anonymous visitors of the login page.
    for _ in range(3):
        visitor = new_page(chromium, box)
        visitor.goto("/login")
        visitor.context.close()
    owner = new_page(chromium, box)
    sign_in_past_offer(owner, "owner", PASSWORD)
    owner.goto("/admin/system")
    facts = owner.inner_text("section:has(#box-h) dl")
    assert re.search(r"Sessions\s+2 signed in", facts), facts
    for p in (page, other, owner):
        p.context.close()


def test_a_failed_upload_is_shown_as_failed_and_the_queue_goes_on(box, chromium):
    box.add_user("hank", "user", NEW_USER_PW)
    page = new_page(chromium, box)
    dialogs = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.accept()))
    sign_in_past_offer(page, "hank", NEW_USER_PW)
    page.fill("#new-folder", "Reports")
    page.click("form[action='/files/mkdir'] button")
    page.wait_for_selector(".notice.ok")
    # The second file has the folder's name: it fails, the third still goes.
    page.set_input_files("#upload-files", files=[
        {"name": "first.txt", "mimeType": "text/plain", "buffer": b"one\n"},
        {"name": "Reports", "mimeType": "text/plain", "buffer": b"two\n" * 1000},
        {"name": "third.txt", "mimeType": "text/plain", "buffer": b"three\n"},
    ])
    page.wait_for_selector("#upload-status.failed")
    summary = page.inner_text("#upload-label")
    assert "2 of 3 uploaded; 1 failed" in summary, summary
    assert page.get_attribute("#upload-label", "role") == "alert"
    errors = page.locator("#upload-errors li").all_inner_texts()
    assert errors == ["Reports: a folder of that name exists; a file cannot replace it"], errors
    assert "Is a directory" not in page.inner_text("#upload-status")
    assert dialogs == [], dialogs  # a folder is not offered for replacing
    # The bar is an error bar, not a full green one.
    colour = page.evaluate("getComputedStyle(document.getElementById('upload-progress')).accentColor")
    assert colour == "rgb(180, 35, 24)", colour
    shoot(page, "25-upload-failed")
    page.click("#upload-done a")
    page.wait_for_selector("table.files a.entry:has-text('third.txt')")
    assert page.locator("table.files a.entry:has-text('first.txt')").count() == 1
    page.context.close()


def test_opening_the_enrolment_while_enrolled_warns_asks_a_code_and_cancels(box, chromium):
    box.add_user("ivy", "user", NEW_USER_PW)
    secret, _ = box.enrol("ivy")
    page = new_page(chromium, box)
    step = sign_in_with_code(page, "ivy", NEW_USER_PW, secret, int(time.time()) // 30 - 1)

    # No silent re-enrolment: the state, a warning, a code field, Cancel.
    response = page.goto("/security/totp")
    assert response.status == 200
    assert page.locator(".qr svg").count() == 0
    assert "Two-factor sign-in is on" in page.inner_text("main")
    assert "replaces the app you use now" in page.inner_text(".notice.warn")
    assert page.get_attribute("#replace_code", "required") is not None
    shoot(page, "26-totp-while-enrolled")
    page.click("#cancel")
    page.wait_for_url("**/security")
    assert page.locator(".badge.good:has-text('On')").count() == 1

    # With the code, the new phone's page says what it replaces; Cancel
    # keeps the old app.
    page.goto("/security/totp")
    step, code = next_code(secret, step)
    page.fill("#replace_code", code)
    page.click("form[action='/security/totp/replace'] button[type=submit]")
    page.wait_for_selector(".qr svg")
    assert "replaces your current authenticator" in page.inner_text(".notice.warn")
    page.click("button#cancel")
    page.wait_for_url("**/security")
    assert "Cancelled" in page.inner_text(".notice.ok")
    page.goto("/security/totp")
    assert page.locator(".qr svg").count() == 0
    # The old app still signs in.
    sign_out(page)
    sign_in_with_code(page, "ivy", NEW_USER_PW, secret, step)
    page.context.close()


def test_leftover_text_is_gone(wizard_box, chromium, tmp_path):
    import subprocess
    from conftest import COFFER
    box = wizard_box
    # The command line: serve's help, setup and status.
    help_text = subprocess.run([COFFER, "serve", "--help"], capture_output=True, text=True).stdout
    assert "comes later" not in help_text and "reserved" not in help_text, help_text
    assert "HTTPS" in help_text
    other = tmp_path / "other"
    setup = subprocess.run([COFFER, "--data-dir", str(other), "--seal", "keyfile", "setup", "--admin", "owner",
                            "--password-file", str(box.pw), "--hash-cost", "m=64,t=1,p=1"],
                           capture_output=True, text=True, check=True).stdout
    status = subprocess.run([COFFER, "--data-dir", str(other), "--seal", "keyfile", "status"],
                            capture_output=True, text=True, check=True).stdout
    for out in (setup, status):
        assert "owner owner" not in out, out
    assert "claimed by owner" in setup and "claimed:   yes, by owner" in status, (setup, status)

    # The wizard's password field follows the policy and says so.
    minimum = int(re.search(r"password\.min_length\s*=\s*(\d+)", box.cli("policy", "show").stdout).group(1))
    page = new_page(chromium, box)
    page.goto("/setup")
    assert page.get_attribute("#password", "minlength") == str(minimum)
    assert f"At least {minimum} characters" in page.inner_text("#password_help")
    claim_in_wizard(page, box, "owner", PASSWORD)
    page.click("a:has-text('Skip for now')")
    page.wait_for_url("**/files*")

    # System and API pages: no Markdown backticks, no "API API", TOTP spelt so.
    page.goto("/admin/system")
    text = page.inner_text("main")
    assert "TOTP enrolments" in text and "Totp" not in text, text
    assert "`" not in text, text
    assert page.locator("main code:text-is('coffer console')").count() == 1
    page.goto("/api")
    text = page.inner_text("main")
    assert "`" not in text
    assert "API API" not in page.inner_text("body")

    # Groups: Save and Remove are apart.
    page.goto("/admin/groups")
    page.fill("#new_name", "staff")
    page.click("form:has(#new_name) button[type=submit]")
    page.wait_for_selector("h2:has-text('staff')")
    card = page.locator("section.card", has=page.locator("h2:has-text('staff')"))
    save = card.locator("button:has-text('Save group')").bounding_box()
    remove = card.locator("button:has-text('Remove group')").bounding_box()
    assert remove["y"] - (save["y"] + save["height"]) >= 24, (save, remove)

    # FTPS is not offered while there is no FTPS server, and saving the
    # policy keeps what the core holds.
    box.cli("policy", "set", "mfa.protocols=ssh,https,ftps")
    page.goto("/security")
    assert "FTPS" not in page.inner_text("main")
    assert page.locator("#scope_ftps").count() == 0
    page.goto("/admin/policy")
    assert "FTPS" not in page.inner_text("main")
    page.click("button:has-text('Save policy')")
    page.wait_for_selector(".notice.ok:has-text('Policy saved')")
    protocols = re.search(r"mfa\.protocols\s*=\s*(\S+)", box.cli("policy", "show").stdout).group(1)
    assert "ftps" in protocols, protocols
    page.context.close()


def test_a_mistyped_code_is_tried_again_without_the_password_until_the_lockout(box, chromium):
    box.add_user("gus", "user", NEW_USER_PW)
    secret, _ = box.enrol("gus")
    box.cli("policy", "set", "lockout.max_failures=3")
    page = new_page(chromium, box)
    sign_in(page, "gus", NEW_USER_PW)
    page.wait_for_url("**/login/code")
    page.fill("#code", "000000")
    page.click("button[type=submit]")
    assert "Try again" in page.inner_text(".notice.error")
    assert page.url.endswith("/login/code"), page.url
    _, code = next_code(secret, int(time.time()) // 30 - 1)
    page.fill("#code", code)
    page.click("button[type=submit]")
    page.wait_for_url("**/files*")
    sign_out(page)
    # Each refused code counts: the third locks, and the login starts over.
    sign_in(page, "gus", NEW_USER_PW)
    page.wait_for_url("**/login/code")
    for _ in range(2):
        page.fill("#code", "123456")
        page.click("button[type=submit]")
        assert "Try again" in page.inner_text(".notice.error")
    page.fill("#code", "123456")
    page.click("button[type=submit]")
    assert page.locator("#password").count() == 1, page.url
    assert "too many failed attempts" in page.inner_text(".notice.error").lower()
    events = [e["event"] for e in box.audit(user="gus")]
    assert events.count("code_rejected") >= 4 and "account_locked" in events, events
    page.context.close()

