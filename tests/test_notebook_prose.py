"""Markdown never hand-types a measured number: measured sentences are printed by code.

nbval compares code outputs, never markdown, so a number typed into prose ("about 3x",
"12 ms", "40 %") goes stale silently when the code or the machine changes. The workbook's
rule: a sentence that cites a measurement is built by code from the measured values
(``print`` or ``display(Markdown(f"..."))``), where nbval sees it. This test scans every
markdown cell of every numbered notebook (``notebooks/[0-9][0-9]*_*.ipynb``) and fails on a
number carrying a unit of time, size, ratio or percentage, or a hedged number ("about 5",
"~1e-8", "roughly eight times"), outside the allow-list below.

Allow-list (definitional constants, not measurements), applied before the search:

* code: fenced blocks and inline ``code`` spans, and LaTeX ``$...$``: definitions
  (``rtol=1e-9``, ``window=20``, ``$2^{23}$``), not claims;
* quotations of others' claims in double quotes (the chapter's "often 100x faster"), which
  the notebook then tests against its own printed measurement;
* counts of repetitions ("run 3 times"): "N times" is a ratio only before a comparison
  ("3 times faster", "3 times the input");
* ISO dates and clock times (``2026-11-30``, ``06:00``);
* dtype widths (``4-byte``, ``8 bytes per value``, ``64-bit``);
* NEPSE's ``±10 %`` daily price band (an exchange rule);
* settings named as such: a timeout, TTL, interval, delay or sleep of so many seconds, a
  memory budget of so many MB;
* platform limits and targets named as such in the same phrase ("a 250 MB zip limit",
  "an HPA at 70 % utilisation", "a 30 seconds notice"): configuration, not measurement;
* sizes named as parameters: ``NEPSE_PERF_SIZE`` values and ``N symbols x M sessions``
  (a count is not a unit here: bars, days, sessions, symbols, rows are not flagged).

Numbers without a unit (window lengths, section numbers such as 48.3, versions such as
3.13t, tolerances such as 1e-9) are never flagged unless hedged.

Typed conclusions. A sentence can contradict its output without a single number: "TA-Lib is
level or ahead", "one big task is the slowest". So in the notebooks of ``COMPARATIVE_SCOPE``
a comparative or evaluative word in markdown (``COMPARATIVE``: faster, slowest, wins, beats,
pays off, cheaper, level with, ahead, behind, similar, dominates, dilutes, negligible,
barely, a factor of, an order of magnitude, ...) fails the test, after the same allow-list,
unless ``ALLOWED_COMPARATIVES`` covers that phrase in that notebook with a reason: a
definition, a quotation of the chapter, or a statement about code rather than about a
measurement. Conclusions drawn from measurements are printed by code that picks its words
from the measured values (``nepse_perf.lessons.workbook.compare_words`` and friends).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("[0-9][0-9]*_*.ipynb"))

_NUM = r"(?<![\w.])\d[\d,]*(?:\.\d+)?(?:e[-+]?\d+)?"
_SPELLED = (
    r"(?:two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|fifteen|twenty|thirty|"
    r"forty|fifty|a hundred|hundred|a thousand|thousand)"
)

#: What a measured quantity looks like in prose: (label, pattern).
FLAGGED: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (label, re.compile(pattern, re.IGNORECASE))
    for label, pattern in (
        ("time", _NUM + r"\s*(?:ns|µs|μs|us|ms|s|secs?|seconds?|minutes?|mins?|hours?|hrs?)\b"),
        ("size", _NUM + r"\s*(?:bytes?|[kKMGTP]i?B|[kMGT]b)(?:/s)?(?![\w])"),
        ("ratio", _NUM + r"\s*[x×](?![\w])(?!\s*\d)(?!\s+[a-zA-Z]\b)"),
        (
            "ratio",
            r"(?:" + _NUM + r"|\b" + _SPELLED + r")(?:[\s-]*fold\b|\s+times\s+(?:faster|slower|"
            r"more|less|larger|smaller|bigger|the|as|longer|shorter|higher|lower)\b)",
        ),
        ("ratio", r"\b(?:a|one) (?:quarter|third|half|fifth|tenth) of the (?:time|run|total)"),
        ("percentage", _NUM + r"\s*(?:%|percent\b|per cent\b)"),
        (
            "hedged number",
            r"(?:\babout|\baround|\broughly|\bapproximately|\bapprox\.|\bnearly|\balmost|~|≈)"
            r"\s*(?:" + _NUM + r"|\b" + _SPELLED + r"\b)",
        ),
    )
)

#: Definitional constants removed before the search (see the module docstring).
ALLOWED: tuple[re.Pattern[str], ...] = tuple(
    re.compile(p, re.IGNORECASE | re.DOTALL)
    for p in (
        r"```.*?```",  # fenced code
        r"`[^`\n]*`",  # inline code
        r"\$[^$\n]+\$",  # LaTeX
        r"\"[^\"\n]{1,80}\"|“[^”\n]{1,80}”",  # quotations of others' claims
        r"\b\d{4}-\d{2}-\d{2}\b",  # ISO dates
        r"\b\d{1,2}:\d{2}\b",  # clock times
        r"\b\d+[- ]bytes?\b(?=[- ](?:floats?|values?|ints?|integers?|per|each|wide))",
        r"\b\d+-(?:byte|bit)\b",  # dtype widths
        r"±\s*10\s*%(?:\s+\w+)?\s+(?:band|limit|circuit)",  # NEPSE's price band
        r"\b(?:timeout|ttl|interval|delay|sleep)s?\b[^.\n]{0,20}?" + _NUM + r"\s*(?:ms|s)\b",
        r"\b\d[\d,]*\s+symbols?\s*[x×]\s*\d[\d,]*\b",  # panel sizes named as parameters
        r"\bbudget of " + _NUM + r"\s*[kMG]i?B\b",  # a memory budget set by the notebook
        # platform limits and targets named as such ("a 250 MB zip limit", "70 % utilisation")
        _NUM + r"\s*(?:%|(?:[kMG]i?B|s|seconds|minutes|hours)\b)[^.\n]{0,25}?"
        r"\b(?:limits?|quotas?|targets?|utili[sz]ation|notice)\b",
    )
)


#: Comparative and evaluative words: in markdown they state a measured conclusion.
COMPARATIVE: re.Pattern[str] = re.compile(
    r"(?<![-\w])(?:faster|slower|fastest|slowest|quicker|quickest|speeds? up|sped up|"
    r"wins?|won|winners?|beats?|beaten|outperforms?|outperformed|overtakes?|"
    r"pays? off|paid off|cheaper|cheapest|costlier|costliest|more expensive|less expensive|"
    r"level (?:with|or)|on par|ahead|behind|similar(?:ly)?|comparable|"
    r"dominates?|dominated|dominant|dilutes?|diluted|negligible|barely|hardly|marginal(?:ly)?|"
    r"a factor of|orders? of magnitude|dwarfs?|twice as|half as|costs? (?:more|less)|"
    r"scales? (?:linearly|well|badly|poorly)|much (?:more|less|larger|smaller|higher|lower)|"
    r"far (?:more|less|larger|smaller|higher|lower))\b",
    re.IGNORECASE,
)

#: Notebooks whose markdown is held to the comparative rule: every numbered notebook.
COMPARATIVE_SCOPE: tuple[str, ...] = (
    "00_", "01_", "02_", "03_", "03b_", "04_", "05_", "05b_", "06_", "07_", "08_", "09_", "10_",
    "11_",
)  # fmt: skip

#: notebook stem -> ((phrase regex, reason), ...): comparatives that state no measurement.
#: A phrase is matched (case-insensitive) against the sentence around the flagged word.
ALLOWED_COMPARATIVES: dict[str, tuple[tuple[str, str], ...]] = {
    "00_data_and_pipeline": (
        # 00 entries
    ),
    "01_profiling": (
        # 01 entries
    ),
    "02_vectorisation": (
        # 02 entries
    ),
    "03_algorithmic": (
        # 03 entries
    ),
    "03b_kernels": (
        # 03b entries
    ),
    "04_parallel": (
        # 04 entries
    ),
    "05_distributed": (
        # 05 entries
    ),
    "05b_ray_spark": (
        # 05b entries
    ),
    "06_caching": (
        # 06 entries
    ),
    "07_memory": (
        # 07 entries
    ),
    "08_gpu": (
        # 08 entries
    ),
    "09_model_inference": (
        # 09 entries
    ),
    "11_cloud": (
        # 11 entries
    ),
}


def _strip_allowed(markdown: str) -> str:
    text = markdown
    for pattern in ALLOWED:
        text = pattern.sub(" ", text)
    return text


def _sentence_around(text: str, start: int, end: int) -> str:
    a = max(text.rfind(". ", 0, start), text.rfind("\n\n", 0, start), -1) + 1
    stops = [i for i in (text.find(". ", end), text.find("\n\n", end)) if i >= 0]
    b = min(stops) + 1 if stops else len(text)
    return " ".join(text[a:b].split())


def comparatives(markdown: str, allowed: tuple[tuple[str, str], ...] = ()) -> list[str]:
    """Each comparative word in ``markdown`` not covered by ``allowed``, with its sentence."""
    text = _strip_allowed(markdown)
    found = []
    for m in COMPARATIVE.finditer(text):
        sentence = _sentence_around(text, m.start(), m.end())
        if any(re.search(phrase, sentence, re.IGNORECASE) for phrase, _ in allowed):
            continue
        found.append(f"comparative {m.group(0)!r} in '{sentence[:160]}'")
    return found


def offending(markdown: str) -> list[str]:
    """Each hand-typed measured quantity in ``markdown``, with a little context."""
    text = _strip_allowed(markdown)
    found = []
    for label, pattern in FLAGGED:
        for m in pattern.finditer(text):
            a, b = max(0, m.start() - 30), min(len(text), m.end() + 20)
            context = " ".join(text[a:b].split())
            found.append(f"{label} {m.group(0).strip()!r} in '...{context}...'")
    return found


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The fused kernel is about 3x faster.", 2),
        ("It takes 12 ms per call.", 1),
        ("That is 40 % of the time.", 1),
        ("about a quarter of the time", 1),
        ("roughly eight times slower", 2),
        ("the slow loops run 3 times without a warm-up", 0),
        ('the chapter\'s "often 100x faster" claim', 0),
        ("Welford's error reaches about 1e-6 relative", 1),
        ("reads at 0.8 GB/s", 1),
        ("with `rtol=1e-9` and a 20-bar window", 0),
        ("SMA(20), RSI(14), section 48.3, Python 3.13t, 2026-11-30", 0),
        ("the ±10 % daily band", 0),
        ("4-byte floats and 8 bytes per value", 0),
        ("a timeout of 0.3 s", 0),
        ("Lambda's 250 MB (unzipped) zip limit and 10 GB image limit", 0),
        ("an HPA at 70 % utilisation", 0),
        ("50 symbols x 2,500 sessions", 0),
        ("the 10 x n float64 output block", 0),
        ("exact only below $2^{23}$ = 8,388,608", 0),
    ],
)
def test_the_detector(text: str, expected: int) -> None:
    assert len(offending(text)) == expected, offending(text)


def test_there_are_notebooks() -> None:
    assert NOTEBOOKS


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_prose_cites_no_hand_typed_measurement(path: Path) -> None:
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    problems = [
        f"{path.name} cell {i}: {hit}"
        for i, cell in enumerate(cells)
        if cell["cell_type"] == "markdown"
        for hit in offending("".join(cell["source"]))
    ]
    assert not problems, (
        "markdown hand-types measured numbers; print them from code instead "
        "(display(Markdown(f'...'))):\n" + "\n".join(problems)
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("TA-Lib is level or ahead on every indicator.", 2),
        ("One big task is the slowest.", 1),
        ("Caching pays off.", 1),
        ('The chapter claims it is "often 100x faster".', 0),
        ("`faster_kernel` is a name.", 0),
        ("This line sets the level of detail.", 0),
        ("That is not a look-ahead bug.", 0),
    ],
)
def test_the_comparative_detector(text: str, expected: int) -> None:
    assert len(comparatives(text)) == expected, comparatives(text)


def test_an_allow_list_entry_covers_its_sentence_only() -> None:
    text = "A compiled loop runs faster than the interpreter by design. Threads are faster."
    hits = comparatives(text, ((r"compiled loop runs faster", "about code"),))
    assert len(hits) == 1 and "Threads" in hits[0]


def test_every_allow_list_entry_has_a_reason_and_a_notebook() -> None:
    stems = {p.stem for p in NOTEBOOKS}
    for stem, entries in ALLOWED_COMPARATIVES.items():
        assert stem in stems, f"allow-list names a notebook that does not exist: {stem}"
        for phrase, reason in entries:
            assert phrase and len(reason.split()) >= 2, (stem, phrase, reason)


@pytest.mark.parametrize(
    "path", [p for p in NOTEBOOKS if p.name.startswith(COMPARATIVE_SCOPE)], ids=lambda p: p.name
)
def test_prose_types_no_measured_conclusion(path: Path) -> None:
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    allowed = ALLOWED_COMPARATIVES.get(path.stem, ())
    problems = [
        f"{path.name} cell {i}: {hit}"
        for i, cell in enumerate(cells)
        if cell["cell_type"] == "markdown"
        for hit in comparatives("".join(cell["source"]), allowed)
    ]
    assert not problems, (
        "markdown types a measured conclusion; print it from the measured values instead, "
        "or allow-list it with a reason:\n" + "\n".join(problems)
    )
