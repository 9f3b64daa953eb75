"""WCAG 2.2 AA in a real headless Chromium against a real ``dancecat serve``.

axe-core (vendored under ``tests/vendor/axe-core``, never served by the app) runs in every
screen at 1280 and 375 px; keyboard-only tests Tab through the job form at 1280, 768 and
375 px and check that each focused element is on screen, clear of the sticky Save/Run bar,
and ringed by an outline of 3:1 or more against what is behind it; in forced-colors mode the
ring survives. Colours are never typed into this file: contrast is computed (WCAG relative
luminance) from what the browser reports through ``getComputedStyle``.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import CHINOOK_SQLITE
from test_browser import CHROMIUM_ARGS, WAIT_MS, chromium, open_editor  # noqa: F401 - the fixture
from test_web_helpers import LiveServer, dancecat, serve

pytestmark = pytest.mark.browser

AXE = Path(__file__).parent / "vendor" / "axe-core" / "axe.min.js"
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]
EMAIL = "ada@example.com"
PASSWORD = "a long accessible password"
JOB = "Top artists"
# One long line: the job page's query box scrolls sideways and must take keyboard focus.
QUERY = (
    "SELECT ArtistId, Name, length(Name) AS name_length, upper(Name) AS shouting, "
    "lower(Name) AS whispering, substr(Name, 1, 3) AS initials FROM Artist ORDER BY ArtistId"
)
WIDTHS = (1280, 375)

# What the browser reports for an element's focus ring and the colour behind it: the
# background of the element itself when the ring is drawn inside it (negative offset), else
# of its parent, with translucent layers composited up to the first opaque one.
RING = """el => {
  const target = el.closest('.CodeMirror') || el;
  const rgba = c => { const n = (c.match(/[\\d.]+/g) || []).map(Number);
                      return [n[0] || 0, n[1] || 0, n[2] || 0, n.length > 3 ? n[3] : 1]; };
  const behind = node => {
    const layers = [];
    for (let n = node; n && n.nodeType === 1; n = n.parentElement) {
      const c = rgba(getComputedStyle(n).backgroundColor);
      if (c[3] > 0) { layers.push(c); if (c[3] >= 1) break; }
    }
    let out = [255, 255, 255];
    for (const [r, g, b, a] of layers.reverse()) {
      out = [r * a + out[0] * (1 - a), g * a + out[1] * (1 - a), b * a + out[2] * (1 - a)];
    }
    return out;
  };
  const s = getComputedStyle(target);
  const offset = parseFloat(s.outlineOffset) || 0;
  const box = target.getBoundingClientRect();
  const bar = document.querySelector('.sticky-actions');
  const label = el.labels && el.labels.length ? el.labels[0].textContent : '';
  return {
    name: el.tagName + (el.id ? '#' + el.id : '') + ' ' +
          (el.getAttribute('aria-label') || label || el.textContent || el.name || '')
            .trim().slice(0, 40),
    style: s.outlineStyle, width: parseFloat(s.outlineWidth), color: rgba(s.outlineColor),
    background: behind(offset < 0 ? target : target.parentElement),
    top: box.top, bottom: box.bottom, left: box.left, right: box.right,
    viewport: [innerWidth, innerHeight],
    barTop: bar && !bar.contains(el) ? bar.getBoundingClientRect().top : null,
  };
}"""


def luminance(rgb: list[float]) -> float:
    """WCAG 2 relative luminance of an sRGB colour (0-255 channels)."""
    def channel(value: float) -> float:
        c = value / 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(v) for v in rgb[:3])
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a: list[float], b: list[float]) -> float:
    high, low = sorted((luminance(a), luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def test_the_contrast_function_matches_wcag():
    assert contrast([0, 0, 0], [255, 255, 255]) == pytest.approx(21)
    assert contrast([0x76, 0x76, 0x76], [255, 255, 255]) == pytest.approx(4.54, abs=0.01)


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[LiveServer]:
    """An admin with a shared SQLite connection and a job with two finished runs."""
    root = tmp_path_factory.mktemp("a11y")
    home = root / "home"
    home.mkdir()
    database = root / "chinook.sqlite"
    shutil.copyfile(CHINOOK_SQLITE, database)
    dancecat(home, "init")
    dancecat(home, "add-allowed-user", EMAIL, "--admin")
    dancecat(home, "connection", "add", "chinook", "--driver", "sqlite",
             "--database", str(database), "--shared")
    dancecat(home, "job", "add", JOB, "--connection", "chinook", "--sql", QUERY, "--shared")
    dancecat(home, "job", "run", JOB)
    dancecat(home, "job", "run", JOB)
    yield from serve(home, env={"DANCECAT_TIMEZONE": "Europe/Paris"})


@pytest.fixture(scope="module")
def signed_in(chromium, server):  # noqa: F811 - the fixture
    """A browser context signed in as the admin (first sign-in sets the password). The
    page's CSP is bypassed only so the test can inject axe-core."""
    context = chromium.new_context(viewport={"width": 1280, "height": 900}, bypass_csp=True)
    context.set_default_timeout(WAIT_MS)
    page = context.new_page()
    page.goto(server.url + "/login")
    page.get_by_label("Email").fill(EMAIL)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_text("First sign-in, or your password was reset?").click()
    page.get_by_label("Confirm password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in or sign up").click()
    page.wait_for_url("**/")
    # A job of the admin's own (id 2): its page also shows the pull URL and trigger forms.
    page.goto(server.url + "/jobs/new")
    page.get_by_label("Name", exact=True).fill("Mine")
    open_editor(page)
    page.keyboard.insert_text("SELECT Name FROM Artist")
    page.get_by_role("button", name="Save", exact=True).click()
    page.wait_for_url("**/jobs/2")
    page.close()
    yield context
    context.close()


@pytest.fixture
def page(signed_in):
    page = signed_in.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    page.close()
    assert errors == [], errors


def violations(page) -> list[dict]:
    """axe-core's WCAG 2.x A/AA violations in the page as it is now."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.add_script_tag(path=str(AXE))
    return page.evaluate(
        """async tags => {
          const result = await axe.run(document, {runOnly: {type: 'tag', values: tags}});
          return result.violations.map(v => ({
            id: v.id, impact: v.impact, help: v.help,
            nodes: v.nodes.slice(0, 5).map(n => n.target.join(' ') + ' :: ' + n.failureSummary),
          }));
        }""",
        AXE_TAGS,
    )


def refused_job_form(page, url: str) -> None:
    """The new-job form saved with an empty name and query, two bad recipients and a bad
    cron: the browser's own checks are switched off so the server refuses it."""
    page.goto(url + "/jobs/new")
    for address in ("not-an-email", "ok@example.com", "also@bad@example.com"):
        page.get_by_role("button", name="Add recipient").click()
        page.locator("[data-recipients] input[name=recipients]").last.fill(address)
    page.get_by_role("button", name="New schedule").click()
    block = page.locator("fieldset.schedule").last
    block.get_by_label("Schedule type").select_option("cron")
    block.get_by_label("Start on").fill("2031-01-07T09:30")
    block.get_by_label("Cron expression").fill("61 * * *")
    page.evaluate("document.getElementById('job-form').noValidate = true")
    page.get_by_role("button", name="Save", exact=True).click()
    page.locator(".error-box").wait_for()


SCREENS = {
    "home": "/",
    "jobs": "/jobs",
    "job": "/jobs/1",
    "own job": "/jobs/2",
    "job form": "/jobs/new",
    "connections": "/connections",
    "connection form": "/connections/new",
    "tokens": "/tokens",
    "users": "/users",
    "404": "/no/such/page",
}


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("screen", [*SCREENS, "job form with errors", "job form in the editor"])
def test_axe_finds_no_violation(page, server, screen, width):
    page.set_viewport_size({"width": width, "height": 900})
    if screen == "job form with errors":
        refused_job_form(page, server.url)
    elif screen == "job form in the editor":  # as it is once the query field is used
        page.goto(server.url + "/jobs/new")
        open_editor(page)
    else:
        page.goto(server.url + SCREENS[screen])
    found = violations(page)
    assert found == [], found


@pytest.mark.parametrize("width", WIDTHS)
def test_axe_finds_no_violation_on_the_sign_in_page(chromium, server, width):  # noqa: F811
    context = chromium.new_context(viewport={"width": width, "height": 900}, bypass_csp=True)
    page = context.new_page()
    page.goto(server.url + "/login")
    page.get_by_text("First sign-in, or your password was reset?").click()
    found = violations(page)
    context.close()
    assert found == []


def _ring_problems(ring: dict) -> list[str]:
    problems = []
    if ring["style"] in ("none", "hidden") or ring["width"] < 2:
        problems.append(f"no 2 px outline ({ring['style']} {ring['width']}px)")
    elif contrast(ring["color"], ring["background"]) < 3:
        ratio = contrast(ring["color"], ring["background"])
        problems.append(f"outline {ring['color']} on {ring['background']} is {ratio:.2f}:1")
    width, height = ring["viewport"]
    if ring["bottom"] <= 0 or ring["top"] >= height or ring["right"] <= 0 or ring["left"] >= width:
        problems.append("off screen")
    if ring["barTop"] is not None and ring["bottom"] > ring["barTop"] + 0.5:
        problems.append(f"under the sticky bar ({ring['bottom']:.0f} > {ring['barTop']:.0f})")
    return problems


def tab_through(page, limit: int = 120) -> list[dict]:
    """Press Tab from the top of the page until focus leaves it; each focused element's ring."""
    page.evaluate(
        """() => { window.scrollTo(0, 0); document.body.tabIndex = -1; document.body.focus();
                   document.body.removeAttribute('tabindex'); }"""
    )
    rings: list[dict] = []
    seen: list = []
    for _ in range(limit):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement === document.body"):
            break
        # The page may adjust its scroll a frame after the focus moved: measure after it.
        page.evaluate("() => new Promise(r => requestAnimationFrame(() => setTimeout(r)))")
        handle = page.evaluate_handle("document.activeElement")
        if seen and handle.evaluate("(el, last) => el === last", seen[-1]):
            continue  # a date input's next part (day, month, year…): the same element
        if any(handle.evaluate("(el, old) => el === old", old) for old in seen[:1]):
            break  # round again
        seen.append(handle)
        rings.append(handle.evaluate(RING))
    return rings


@pytest.mark.parametrize("width", [1280, 768, 375])
def test_tab_through_the_job_form_every_focus_is_seen(page, server, width):
    """The WCAG 2.4.7/2.4.11/1.4.11 promises for every stop of the keyboard: with a
    schedule and a recipient block open, Tab reaches the sticky bar's buttons last."""
    page.set_viewport_size({"width": width, "height": 700})
    page.goto(server.url + "/jobs/new")
    page.get_by_role("button", name="New schedule").click()
    page.get_by_role("button", name="Add recipient").click()
    page.get_by_role("button", name="New schedule").click()
    # The editor is built when the query's textarea first takes the focus, which swaps
    # the focused element under a measurement: build it first, then walk the form.
    open_editor(page)
    rings = tab_through(page)
    names = [ring["name"] for ring in rings]
    for wanted in ("Add recipient", "New schedule", "Remove this schedule", "Active", "Save",
                   "Run preview", "Cancel"):
        assert any(wanted in name for name in names), (wanted, names)
    problems = {ring["name"]: _ring_problems(ring) for ring in rings if _ring_problems(ring)}
    assert problems == {}


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize(
    ("path", "wanted"),
    [
        ("/jobs/1", ("Run now", "PRE", "Log out")),
        ("/jobs/2", ("New pull URL", "Require a signature", "New trigger URL", "Delete")),
        ("/jobs", (f"Run {JOB}", "Filter", "Log out")),
    ],
)
def test_tab_through_the_job_page_the_jobs_screen_and_top_bar(page, server, width, path, wanted):
    """The job page (Run now, the long query's box) and the Jobs screen (Run, the filters),
    with the top bar's links on the dark background."""
    page.set_viewport_size({"width": width, "height": 800})
    page.goto(server.url + path)
    rings = tab_through(page)
    names = [ring["name"] for ring in rings]
    for name in wanted:
        assert any(name in found for found in names), (name, names)
    problems = {ring["name"]: _ring_problems(ring) for ring in rings if _ring_problems(ring)}
    assert problems == {}


def test_the_focus_ring_survives_forced_colors(page, server):
    page.emulate_media(forced_colors="active")
    page.goto(server.url + "/jobs/1")
    assert page.evaluate("matchMedia('(forced-colors: active)').matches")
    for _ in range(40):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.textContent.trim() === 'Run now'"):
            break
    else:
        pytest.fail("Tab never reached Run now")
    ring = page.evaluate_handle("document.activeElement").evaluate(RING)
    assert ring["style"] not in ("none", "hidden") and ring["width"] >= 2, ring
    assert contrast(ring["color"], ring["background"]) >= 3, ring


def _colour(page, selector: str, prop: str) -> list[float]:
    return page.locator(selector).first.evaluate(
        f"el => (getComputedStyle(el).{prop}.match(/[\\d.]+/g) || []).slice(0, 3).map(Number)"
    )


def test_components_and_text_meet_their_contrast(page, server):
    """Input borders and chart bars (UI components, 3:1), editor line numbers and the
    404 page's status (text, 4.5:1): as the browser draws them."""
    page.goto(server.url + "/jobs/new")
    white = _colour(page, "#name", "backgroundColor")
    assert contrast(_colour(page, "#name", "borderTopColor"), white) >= 3
    assert contrast(_colour(page, "#query", "borderTopColor"), white) >= 3
    open_editor(page)
    assert contrast(_colour(page, ".CodeMirror", "borderTopColor"), white) >= 3
    number = _colour(page, ".CodeMirror-linenumber", "color")
    gutter = _colour(page, ".CodeMirror-gutters", "backgroundColor")
    assert contrast(number, gutter) >= 4.5

    page.goto(server.url + "/jobs/1")
    chart = _colour(page, "figure.chart", "backgroundColor")
    assert page.locator("figure.chart rect.bar").count() == 2
    assert contrast(_colour(page, "figure.chart rect.bar", "fill"), chart) >= 3
    assert contrast(_colour(page, ".key-bar", "backgroundColor"), chart) >= 3

    page.goto(server.url + "/nowhere")
    status = _colour(page, ".error-status", "color")
    assert contrast(status, _colour(page, "html", "backgroundColor")) >= 4.5


def _focused(page) -> dict:
    return page.evaluate(
        """() => { const el = document.activeElement;
                   return {tag: el.tagName, id: el.id, text: el.textContent.trim(),
                           live: !!el.closest('[role=status], [aria-live]')}; }"""
    )


def test_focus_after_run_on_the_jobs_screen_and_the_job_page(page, server):
    for path, button in (("/jobs", f"Run {JOB}"), ("/jobs/1", "Run now")):
        page.goto(server.url + path)
        before = page.locator("#trackers tr").count()
        page.get_by_role("button", name=button).focus()
        page.keyboard.press("Enter")
        page.wait_for_function(
            "n => document.querySelectorAll('#trackers tr').length > n", arg=before
        )
        page.wait_for_function("() => document.activeElement !== document.body")
        focused = _focused(page)
        assert focused["live"] and "queued" in focused["text"], focused
        run = page.locator("#trackers tr").first.get_attribute("data-tracker")
        assert f"Run {run} of {JOB}" in focused["text"]


def test_focus_after_test_connection_goes_to_its_result(page, server):
    page.goto(server.url + "/connections/new")
    page.get_by_label("Name", exact=True).fill("nowhere")
    page.get_by_label("Database").fill(str(server.home.parent / "chinook.sqlite"))
    page.get_by_role("button", name="Test Connection").focus()
    page.keyboard.press("Enter")
    page.locator("#check-result p").wait_for()
    page.wait_for_function("() => document.activeElement.closest('#check-result')")
    focused = _focused(page)
    assert focused["live"], focused
    assert focused["text"].startswith(("Connected", "Could not connect")), focused


def test_the_editor_is_built_on_first_use_and_keeps_what_was_typed(page, server):
    """The job form paints without CodeMirror (issue 17: it is the cost that kept the form
    under Lighthouse 95 on a phone). The labelled textarea shows the query and takes typing
    while the editor's files are on their way (held back here), Ctrl-Enter included; the
    editor then replaces it with the same text, the caret where it was and the focus; the
    textarea, still the form field, holds the query once; Tab leaves the editor and the
    label comes back to it."""
    held: list = []

    def hold(route) -> None:  # the script only: an idle prefetch of it may go
        if route.request.resource_type == "script":
            held.append(route)
        else:
            route.continue_()

    page.route("**/vendor/codemirror/codemirror.*.js", hold)
    page.goto(server.url + "/jobs/1/edit")
    assert page.evaluate("typeof window.CodeMirror") == "undefined"
    # (Its files may be prefetched once the page is idle, but not run.)
    loaded = "script[src*=codemirror], link[rel=stylesheet][href*=codemirror]"
    assert page.locator(loaded).count() == 0
    area = page.get_by_role("textbox", name="Query")
    assert area.input_value() == QUERY
    page.locator("#query-label").click()  # the label focuses the textarea: the editor loads
    page.wait_for_function("() => document.querySelector('script[src*=codemirror]') !== null")
    page.keyboard.press("Control+End")
    page.keyboard.type(" LIMIT 5")
    # Ctrl-Enter runs the preview from the textarea as from the editor.
    page.keyboard.press("Control+Enter")
    page.locator("#preview").wait_for()
    assert page.locator("#preview tbody tr").count() == 5, page.inner_text("#preview-slot")
    area.focus()
    # While the editor is on its way, the textarea's own focus ring is the one seen.
    assert _ring_problems(area.evaluate(RING)) == []
    page.keyboard.press("Control+End")
    page.keyboard.press("ArrowLeft")
    assert page.locator(".CodeMirror").count() == 0 and area.input_value() == QUERY + " LIMIT 5"
    for _ in range(100):
        if held:
            break
        page.wait_for_timeout(50)
    else:
        pytest.fail("the editor's script was not asked for")
    for route in held:
        route.continue_()
    page.unroute("**/vendor/codemirror/codemirror.*.js")
    page.locator(".CodeMirror").wait_for()
    page.wait_for_function("() => document.activeElement.closest('.CodeMirror') !== null")
    page.keyboard.type("0")
    wanted = QUERY + " LIMIT 05"
    assert page.evaluate("document.querySelector('.CodeMirror').CodeMirror.getValue()") == wanted
    assert page.locator("#query").input_value() == wanted
    assert page.locator("#query").is_hidden()
    page.evaluate("document.getElementById('preview-slot').textContent = ''")
    page.keyboard.press("Control+Enter")
    page.locator("#preview").wait_for()
    assert page.locator("#preview tbody tr").count() == 5, page.inner_text("#preview-slot")
    page.locator("#query-label").click()
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.closest('.CodeMirror') === null")
    page.locator("#query-label").click()
    assert page.evaluate("document.activeElement.closest('.CodeMirror') !== null")


def test_a_refused_save_links_every_wrong_field_and_focuses_the_first(page, server):
    refused_job_form(page, server.url)
    invalid = page.locator("form [aria-invalid=true]")
    ids = invalid.evaluate_all("els => els.map(el => el.id)")
    assert "name" in ids and "query" in ids
    assert "schedule-0-cron" in ids or any(i.endswith("-cron") for i in ids), ids
    recipients = page.locator("[data-recipients] input[name=recipients][aria-invalid=true]")
    assert [r.input_value() for r in recipients.all()] == ["not-an-email", "also@bad@example.com"]
    message = page.locator("#recipients-error").inner_text()
    assert "'not-an-email'" in message and "'also@bad@example.com'" in message, message
    for element in invalid.all():
        described = (element.get_attribute("aria-describedby") or "").split()
        messages = [page.locator(f"#{i}").inner_text() for i in described if i.endswith("-error")]
        assert messages and all(messages), element.get_attribute("id")
    assert _focused(page)["id"] == "name"
    # The editor's own input is the one a keyboard reaches once it is built: it says so too.
    open_editor(page)
    assert page.locator(".CodeMirror textarea").get_attribute("aria-invalid") == "true"


@pytest.mark.parametrize("width", [320, 375, 768, 1024, 1280])
def test_every_table_fits_or_reflows(page, server, width):
    """No page scrolls sideways and no data table hides a column behind its own sideways
    scroll, from 320 px up (the Jobs table's Actions, the runs table's Notifications)."""
    page.set_viewport_size({"width": width, "height": 900})
    for path in ("/jobs", "/jobs/1", "/jobs/2", "/connections", "/users"):
        page.goto(server.url + path)
        page_width = page.evaluate("document.documentElement.scrollWidth")
        assert page_width <= width, f"{path} is {page_width}px wide at {width}px"
        hidden = page.evaluate(
            """() => [...document.querySelectorAll('.table-wrap:not(.preview-wrap)')]
                 .filter(w => w.scrollWidth > w.clientWidth + 1)
                 .map(w => w.querySelector('table').className + ' ' + w.scrollWidth)"""
        )
        assert hidden == [], f"{path} at {width}px: {hidden}"
    page.goto(server.url + "/jobs")
    cells = page.locator("td.actions, td[data-label=Notifications]")
    assert cells.count() >= 3
    for cell in cells.all():
        box = cell.bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= width, (cell.inner_html(), box)
