"""report.html in a real browser, and `harness signoff`, on planted check records (no sampling: seconds).

The page is opened from disk by headless Chromium with the network off (harness.report.browser).
Text: `--dump-dom` of the page itself, reduced to its visible text. Images: the page has no
script (by design), so a copy of it gets a one-line probe that, on `load`, writes every
image's `naturalWidth` into the DOM; Chromium decoded an image iff that width is positive.
A planted broken image proves the probe can fail. The screenshot is kept as `report.png` in
the run folder and must show the banner's colour — it is a picture of the page, not a blank.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from html import unescape
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from fusion.data.availability import availability_record
from fusion.io import write_json, write_png
from harness.report import browser
from harness import cli
from harness import runner
from harness.checks import CheckContext, CheckResult, gate_record, gates_of

CHECKS = ("parity", "convergence", "stability")
CASES = {"parity": ("small", "subsample"), "convergence": ("all",), "stability": ("all",)}
PROBE = (
    "<script>window.addEventListener('load',()=>{for(const i of document.images)"
    "{i.setAttribute('data-natural-width',i.naturalWidth)}})</script>"
)


def _plot(path: Path, colour: str) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(3, 2))
    fig.subplots().plot([0, 1, 2], [1, 0, 1], color=colour)
    write_png(path, fig)


def planted(
    status: str, colour: str, with_availability: bool = False
) -> Callable[[CheckContext], CheckResult]:
    """A stand-in check: one plot, a figure against a threshold, optionally an availability record."""

    def check(ctx: CheckContext) -> CheckResult:
        _plot(ctx.artifact_dir / "plot.png", colour)
        if with_availability:
            record = availability_record(
                block_stream=[0, 1, 1],
                block_interval=[0, 0, 0],
                intervals=[(2015.0, 2016.0)],
                pixels_per_block=6,
                kept_after=np.array([[5, 6, 4], [5, 6, 4], [4, 5, 4], [4, 5, 4], [4, 5, 3]]),
                subsampled=np.array([4, 5, 3]),
                notes=[None, None, None],
                emptied_by={},
            )
            write_json(ctx.artifact_dir / "run_metadata.json", {"availability": record})
        value = 3.0 if status == "fail" else 0.5
        return CheckResult(
            name="?",
            case=ctx.case,
            status=status,  # type: ignore[arg-type]
            figures={"x_max": value},
            thresholds={"x_max": "≤ 1"},
            gates=gates_of(gate_record("x_max", "≤", 1.0, value)),
            messages=[f"x_max {value} > 1 (over by {value - 1:g})"] if status == "fail" else [],
            plots=["plot.png"],
            provenance={"seed": 7, "inputs_sha256": {"obs/a.nc": "ab" * 32}},
        )

    return check


def fake_run(out: Path, failing: str | None = None) -> runner.RunOutcome:
    registry = {
        name: SimpleNamespace(
            cases=lambda suite, catalog, name=name: list(CASES[name]),
            run_check=planted(
                "fail" if name == failing else "pass", f"C{i}", with_availability=name == "parity"
            ),
        )
        for i, name in enumerate(CHECKS)
    }
    return runner.run(
        runner.RunOptions(out=out, checks=CHECKS), registry=registry, progress=lambda line: None
    )


class _Text(HTMLParser):
    """Visible text of a DOM dump (script, style and title left out)."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self._skip += tag in ("script", "style", "title")

    def handle_endtag(self, tag: str) -> None:
        self._skip -= tag in ("script", "style", "title")

    def handle_data(self, data: str) -> None:
        if not self._skip and data.strip():
            self.parts.append(data.strip())


def visible_text(dom: str) -> list[str]:
    parser = _Text()
    parser.feed(dom)
    return parser.parts


def decoded_widths(page: Path, workdir: Path) -> list[int]:
    """naturalWidth of every <img> as Chromium decoded it (probe copy of the page, CSP lifted for the probe)."""
    html = page.read_text()
    probe = html.replace('http-equiv="Content-Security-Policy"', 'name="csp-lifted-for-probe"').replace(
        "</body>", PROBE + "</body>"
    )
    copy = workdir / "probe.html"
    copy.write_text(probe)
    dom = browser.dump_dom(copy)
    n_img = len(re.findall(r"<img\b", dom))
    widths = [int(w) for w in re.findall(r'data-natural-width="(\d+)"', dom)]
    assert len(widths) == n_img, "the probe did not run on every image"
    return widths


@pytest.fixture(scope="module")
def chromium() -> str:
    exe = browser.find_chromium()
    if exe is None:
        pytest.fail(f"headless Chromium is required for the report-page test: {browser.INSTALL_HINT}")
    return exe


@pytest.fixture(scope="module")
def failed_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("page") / "run"
    outcome = fake_run(out, failing="stability")
    assert outcome.marker == "_RUN_FAILED"
    return out


def test_browser_renders_verdict_every_check_and_case_and_every_image(
    chromium, failed_run: Path, tmp_path: Path
) -> None:
    page = failed_run / "report.html"
    text = visible_text(browser.dump_dom(page))
    assert text[0] == "FAILED"  # the banner
    assert "_RUN_FAILED" in text
    summary = " ".join(text[text.index("Summary") : text.index("Summary") + 60])
    for name in CHECKS:
        for case in CASES[name]:
            assert re.search(rf"\b{name} {case} (PASS|FAIL)\b", summary), (name, case)
    # the failing row comes first in the summary
    assert summary.split("duration (s)")[1].split()[:3] == ["stability", "all", "FAIL"]
    assert "Data availability" in text and "Sign-off" in text

    widths = decoded_widths(page, tmp_path)
    n_plots = sum(len(c) for c in CASES.values())
    assert len(widths) == n_plots and all(w > 0 for w in widths), widths

    shot = browser.screenshot(page, failed_run / "report.png")  # kept beside the page, as CI's artifact
    from matplotlib.image import imread

    img = imread(shot)
    assert img.shape[:2] == (2400, 1280)
    banner = img[20, 640, :3]
    assert banner[0] > 0.6 and banner[1] < 0.3 and banner[2] < 0.3, banner  # FAILED banner red (#b3261e)
    assert img[..., :3].std() > 0.1  # a rendered page, not a blank


def test_image_probe_catches_an_undecodable_image(chromium, failed_run: Path, tmp_path: Path) -> None:
    """Planted fault: one embedded image is not a PNG — the probe must report width 0 for it."""
    broken = tmp_path / "broken.html"
    html = (failed_run / "report.html").read_text()
    broken.write_text(
        html.replace(
            '<img src="data:image/png;base64,',
            '<img src="data:image/png;base64,QUJDRA==">x<img src="data:image/png;base64,',
            1,
        )
    )
    widths = decoded_widths(broken, tmp_path)
    assert widths.count(0) == 1 and len(widths) == sum(len(c) for c in CASES.values()) + 1


def test_page_is_self_contained(failed_run: Path) -> None:
    html = (failed_run / "report.html").read_text()
    assert "<script" not in html and "<link" not in html and "@import" not in html and "url(" not in html
    assert "default-src 'none'" in html  # CSP: the browser may fetch nothing
    sources = re.findall(r'<img[^>]* src="([^"]{0,30})', html)
    assert sources and all(s.startswith("data:image/png;base64,") for s in sources)
    assert not re.search(r'(src|href)="(https?:)?//', html)


def test_planted_failure_heads_markdown_and_page_from_one_document(failed_run: Path) -> None:
    md = (failed_run / "report.md").read_text().splitlines()
    assert md[0] == "# FUSION harness report — quick suite: FAILED"
    assert md[4].startswith("| stability | all | FAIL | x_max | ≤ 1 | 3 | -2 |")
    html = (failed_run / "report.html").read_text()
    assert '<header class="banner fail" id="verdict"><h1>FAILED</h1>' in html
    rows = re.findall(r'<tr class="(\w+)"><td><a href="#check-(\w+)-(\w+)">', html)
    assert [r[1:] for r in rows] == [
        ("stability", "all"),
        ("parity", "small"),
        ("parity", "subsample"),
        ("convergence", "all"),
    ]
    assert [r[0] for r in rows] == ["fail", "pass", "pass", "pass"]
    doc = json.loads((failed_run / "report.json").read_text())
    assert [c["headline"]["margin"] for c in doc["checks"]] == [0.5, 0.5, 0.5, -2.0]
    assert doc["checks"][0]["availability"]["streams"]["vel"]["kept"] == 8
    # vel: 12 points; 2 observation missing, 1 over threshold, 1 member non-finite (first rule each), 8 kept
    assert "| vel | all | 12 | 2 | 0 | 1 | 0 | 1 | 8 | 8 |  |" in md


def test_passing_run_banner(tmp_path: Path) -> None:
    fake_run(tmp_path / "ok")
    html = (tmp_path / "ok" / "report.html").read_text()
    assert '<header class="banner pass" id="verdict"><h1>PASSED</h1>' in html and "_RUN_SUCCESS" in html


# --- harness signoff -----------------------------------------------------------------------------


def test_signoff_approves_a_passing_run_and_both_reports_show_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "ok"
    fake_run(out)
    fp = json.loads((out / "report.json").read_text())["run"]["fingerprint"]
    assert (
        cli.main(
            ["signoff", str(out), "--name", "Ada Owner", "--decision", "approve", "--note", "numbers checked"]
        )
        == 0
    )
    assert cli.main(["signoff", str(out), "--name", "Rel Eng", "--decision", "approve"]) == 0
    recs = json.loads((out / "signoff.json").read_text())["signoffs"]
    assert [(r["name"], r["decision"], r["fingerprint"]) for r in recs] == [
        ("Ada Owner", "approve", fp),
        ("Rel Eng", "approve", fp),
    ]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", recs[0]["at"])
    md, html = (out / "report.md").read_text(), (out / "report.html").read_text()
    if browser.find_chromium():
        assert (out / "report.png").stat().st_size > 0  # the screenshot follows the re-rendered page
    assert "| Ada Owner | approve |" in md and "numbers checked" in md and "2 of 2 approvals" in md
    assert "<td>Ada Owner</td>" in html and "numbers checked" in html and "2 of 2 approvals" in html


@pytest.fixture
def no_browser(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI's best-effort screenshot costs a Chromium start; tests that do not look at it skip the cost."""
    monkeypatch.setattr(browser, "find_chromium", lambda: None)


def test_signoff_refuses_approval_of_a_failing_run_but_records_a_rejection(
    failed_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], no_browser: None
) -> None:
    out = tmp_path / "failed"
    import shutil

    shutil.copytree(failed_run, out)
    assert cli.main(["signoff", str(out), "--name", "Ada", "--decision", "approve"]) == 2
    err = capsys.readouterr().err
    assert (
        err == f"harness: {out}: cannot approve a run marked _RUN_FAILED; only _RUN_SUCCESS can be approved\n"
    )
    assert not (out / "signoff.json").exists()
    assert (
        cli.main(["signoff", str(out), "--name", "Ada", "--decision", "reject", "--note", "stability red"])
        == 0
    )
    assert "Rejected by Ada" not in (out / "report.md").read_text()  # a failed run is not releasable anyway
    assert (
        "| Ada | reject |" in (out / "report.md").read_text()
        and "stability red" in (out / "report.html").read_text()
    )


@pytest.mark.parametrize("make", ["empty", "missing"])
def test_signoff_refuses_a_folder_without_a_run_marker(
    make: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "o"
    if make == "empty":
        out.mkdir()
        (out / "report.json").write_text("{}")
    assert cli.main(["signoff", str(out), "--name", "Ada", "--decision", "reject"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"harness: {out}: ")
    if make == "empty":
        assert sorted(p.name for p in out.iterdir()) == ["report.json"]  # nothing written, not even a lock
    else:
        assert not out.exists()


def test_rerun_keeps_sign_offs_and_marks_them_for_another_run(tmp_path: Path, no_browser: None) -> None:
    out = tmp_path / "ok"
    fake_run(out)
    assert cli.main(["signoff", str(out), "--name", "Ada", "--decision", "approve"]) == 0
    recs = json.loads((out / "signoff.json").read_text())["signoffs"]
    recs[0]["fingerprint"] = "0" * 64  # as if the code changed since
    write_json(out / "signoff.json", {"signoffs": recs})
    fake_run(out)
    md = (out / "report.md").read_text()
    assert "| Ada | approve |" in md and "(another run)" in md and "0 of 2 approvals" in md


def test_corrupt_signoff_file_is_refused_by_signoff_and_explained_by_a_rerun(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], no_browser: None
) -> None:
    out = tmp_path / "ok"
    fake_run(out)
    (out / "signoff.json").write_text('{"signoffs": [{"name": "Ada"}]}')
    assert cli.main(["signoff", str(out), "--name", "Bob", "--decision", "approve"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"harness: {out / 'signoff.json'}: expected ") and err.count("\n") == 1
    assert (out / "signoff.json").read_text() == '{"signoffs": [{"name": "Ada"}]}'  # left as it was
    outcome = fake_run(out)  # the run still writes its reports and its marker
    assert outcome.marker == "_RUN_SUCCESS"
    assert "Sign-offs cannot be shown:" in (out / "report.md").read_text()
    assert "Sign-offs cannot be shown:" in (out / "report.html").read_text()


def test_markdown_and_page_show_the_same_summary(failed_run: Path) -> None:
    md = (failed_run / "report.md").read_text().splitlines()
    end = md.index("", 4)
    md_rows = [[c.strip().replace("\\|", "|") for c in line.strip("|").split(" | ")] for line in md[4:end]]
    html = (failed_run / "report.html").read_text()
    table = html[html.index('<table id="summary">') :]
    table = table[: table.index("</table>")]
    page_rows = [
        [unescape(re.sub(r"<[^>]+>", "", cell)).strip() for cell in re.findall(r"<td>(.*?)</td>", row)]
        for row in re.findall(r"<tr class=\"\w+\">(.*?)</tr>", table)
    ]
    assert len(md_rows) == len(page_rows) == 4
    assert md_rows == page_rows


def test_page_escapes_every_value_through_the_template(tmp_path: Path) -> None:
    """Jinja2 autoescaping: a check's text cannot inject markup into the sign-off page."""
    from harness.report.html import render_html

    evil = "<script>alert(1)</script> & \"quotes\""
    doc = {
        "run": {"suite": "quick", "marker": "_RUN_FAILED", "started_at": "t0", "finished_at": "t1", "duration_s": 1.0,
                "fingerprint": "f" * 64, "versions": {}},
        "checks": [
            {"name": "demo", "case": evil, "status": "fail", "figures": {"x": evil}, "thresholds": {evil: 1},
             "gates": [{"figure": evil, "threshold": "≤ 1", "value": 2.0, "margin": -1.0, "passed": False}],
             "headline": {"figure": evil, "threshold": "≤ 1", "value": 2.0, "margin": -1.0, "passed": False},
             "duration_s": 0.1, "messages": [evil], "plots": ["missing<b>.png"], "artifact_dir": "demo/x",
             "resumed": False, "ran": True, "config_hash": "", "provenance": {"seed": evil}, "availability": None}
        ],
    }
    html = render_html(tmp_path, doc, [{"name": evil, "decision": "reject", "at": "t", "fingerprint": "g", "note": evil}])
    assert "<script>" not in html and "<b>" not in html
    assert html.count("&lt;script&gt;alert(1)&lt;/script&gt; &amp; &#34;quotes&#34;") >= 8
    assert "plot missing: missing&lt;b&gt;.png" in html
