"""The benchmark's own tools: callgrind's totals and the difference that makes instructions per
request, the SVG chart writer, and a smoke of ``make bench-instructions`` on the Rust echo
example (N=20, counted twice; a few seconds). ``make bench-test``, part of ``make test``."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(ROOT / "bench"))

import instructions  # noqa: E402
import run  # noqa: E402
from svgchart import STYLES, Bar, Panel, commit_label, grid_svg  # noqa: E402

SVG = "{http://www.w3.org/2000/svg}"

CALLGRIND_OUT = """# callgrind format
version: 1
creator: callgrind-3.19.0
pid: 4242
cmd:  target/release/examples/echo --bind unix:/tmp/app.sock
part: 1

desc: I1 cache:
positions: line
events: Ir
summary: 7081519

ob=(1) /usr/lib/x86_64-linux-gnu/libc.so.6
fl=(1) ./malloc/malloc.c
fn=(1) malloc
12 317379

totals: 7081519
"""


def test_the_total_is_callgrind_totals_line():
    assert instructions.callgrind_total(CALLGRIND_OUT) == 7081519
    # A file cut short before its totals: the summary line of its header.
    head = CALLGRIND_OUT.split("ob=")[0]
    assert instructions.callgrind_total(head) == 7081519
    with pytest.raises(ValueError):
        instructions.callgrind_total("events: Ir\n")


def test_instructions_per_request_is_the_difference_over_the_extra_requests():
    # 1,000,000 to start and stop, 11,000 a request: N=200 and 3N=600 give back the 11,000.
    low, high = 1_000_000 + 200 * 11_000, 1_000_000 + 600 * 11_000
    assert instructions.per_request(low, high, 200, 600) == 11_000
    with pytest.raises(ValueError):
        instructions.per_request(low, high, 600, 200)
    assert instructions.spread([100.0, 101.0]) == pytest.approx(0.01)
    assert instructions.spread([100.0]) is None


def test_the_table_gives_both_runs_ratios_and_why_a_target_was_not_counted():
    rows = [
        {"workload": "hello", "target": "capi", "kind": "ours", "runs": [11050, 11053], "mean": 11051.5},
        {"workload": "hello", "target": "libfcgi", "kind": "peer", "runs": [15019, 15021], "mean": 15020},
        {"workload": "hello", "target": "uwsgi", "kind": "peer", "runs": [None, None], "mean": None},
    ]
    rows[0]["spread"], rows[1]["spread"], rows[2]["spread"] = 3 / 11050, 2 / 15019, None
    rows[0]["ratios"] = {"libfcgi": 11051.5 / 15020, "uwsgi": None}
    rows[2]["error"] = "exited with status 1 before it listened"
    meta = {"runs": 2, "requests": 200, "started": "2026-12-05T05:24:30", "commit": "abc1234 x", "machine": "2 CPUs"}
    text = instructions.render(rows, meta)
    assert re.search(r"hello\s+capi\s+11,050\s+11,053\s+0\.03%\s+11,052", text), text
    assert re.search(r"capi / libfcgi\s+0\.74x", text), text
    assert "capi / uwsgi" not in text
    assert "uwsgi hello: not counted: exited with status 1 before it listened" in text
    svg = ET.fromstring(instructions.chart(rows, meta))
    assert "not counted" in "".join(svg.itertext())


def bars(svg: ET.Element) -> list[ET.Element]:
    return [r for r in svg.iter(f"{SVG}rect") if r.find(f"{SVG}title") is not None]


def test_the_chart_is_well_formed_svg_with_ours_highlighted_and_labels_escaped():
    panel = Panel(
        "hello <&> req/s",
        [Bar("python", 20000, "ours", "20.0k"), Bar("uwsgi", 11000, "peer", "11.0k"), Bar("x & y", None, "peer")],
        "higher is better",
    )
    svg = ET.fromstring(grid_svg("title", ["a subtitle"], [[panel, panel]]))
    drawn = bars(svg)
    assert len(drawn) == 4  # two panels of two bars each; the bar with no figure draws none
    assert drawn[0].get("fill") == STYLES["ours"][0] and drawn[1].get("fill") == STYLES["peer"][0]
    # Each panel on its own scale: the longest bar fills the room it has.
    assert float(drawn[0].get("width")) > float(drawn[1].get("width"))
    text = "".join(svg.itertext())
    assert "hello <&> req/s" in text and "x & y" in text


def test_a_chart_names_the_commit_by_its_short_id():
    assert commit_label("abc1234 a long subject") == "abc1234"
    assert commit_label("abc1234 subject (with uncommitted changes)") == "abc1234 (with uncommitted changes)"


def test_a_bar_far_past_the_others_is_drawn_broken_so_they_stay_readable():
    panel = Panel("hello", [Bar("capi", 11000, "ours"), Bar("libfcgi", 15000, "peer"), Bar("flup", 455000, "peer")])
    svg = ET.fromstring(grid_svg("t", [], [[panel]]))
    capi, libfcgi, flup = (float(r.get("width")) for r in bars(svg))
    assert flup == pytest.approx(libfcgi * 1.25, rel=0.01)  # capped, not 30 times longer
    assert capi / libfcgi == pytest.approx(11 / 15, rel=0.01)
    assert len([p for p in svg.iter(f"{SVG}path") if p.get("class") == "break"]) == 1


def test_make_bench_chart_draws_req_s_and_cpu_per_request_for_each_workload():
    rows = {"req_s": 20000.0, "cpu_us": 12.4}
    result = {
        "meta": {
            "rounds": 3,
            "duration": 10.0,
            "connections": 32,
            "big_connections": 8,
            "threads": 4,
            "started": "2026-12-05T05:29:58",
            "cpus": 2,
            "load_before": [1.0, 1.0, 1.0],
            "load_after": [2.0, 2.0, 2.0],
            "commits": {"ours": "abc1234 subject"},
        },
        "targets": {
            "python": {"kind": "ours"},
            "uwsgi": {"kind": "peer"},
            "nginx": {"kind": "ceiling"},
        },
        "workloads": {"hello": {}, "django": {}},
        "medians": {
            "hello": {"python": rows, "uwsgi": {"req_s": 11000.0, "cpu_us": 21.0}, "nginx": {"req_s": 64000.0}},
            "django": {"python": {"req_s": 5400.0, "cpu_us": 137.0}, "uwsgi": {"req_s": 4500.0, "cpu_us": None}},
        },
    }
    svg = ET.fromstring(run.chart(result))
    text = "".join(svg.itertext())
    for title in ("hello: req/s", "hello: CPU µs/req", "django: req/s", "django: CPU µs/req"):
        assert title in text
    # nginx has no CPU figure of its own (no app process): it has a req/s bar and no CPU bar.
    labels = [t.text for t in svg.iter(f"{SVG}text")]
    assert labels.count("nginx") == 1
    assert "20.0k" in text and "12.4" in text


@pytest.mark.skipif(
    not shutil.which("valgrind"), reason="valgrind is not installed (tests/install-deps.sh installs it)"
)
def test_bench_instructions_counts_the_rust_echo_the_same_twice():
    echo = ROOT / "target" / "release" / "examples" / "echo"
    assert echo.exists(), "`cargo build --release -p fcgi-core --example echo` first (make bench-test does)"
    argv = [sys.executable, str(ROOT / "bench" / "instructions.py"), "--only", "rust", "--workloads", "hello"]
    argv += ["--requests", "20", "--runs", "2", "--no-write"]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    found = re.search(r"^hello\s+rust\s+([\d,]+)\s+([\d,]+)\s+([\d.]+)%", out.stdout, re.MULTILINE)
    assert found, out.stdout
    first, second = (int(found.group(i).replace(",", "")) for i in (1, 2))
    # A hello request is some ten thousand instructions (11k in 2026-12); the two counts agree.
    assert 2_000 < first < 200_000, out.stdout
    assert abs(first - second) / first < 0.03, out.stdout
