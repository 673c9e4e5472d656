"""docs/teaching.md's "Where the course material slips" shows outputs, not claims: every
``>>>`` example in that section runs as a doctest, and every ``python -m gradchain race``
command there prints the table that follows it. A change in gradchain that moves one of
those numbers fails here instead of leaving the page wrong."""

import contextlib
import doctest
import io
import pathlib
import re
import shlex

from gradchain.teaching import race

DOC = pathlib.Path(__file__).resolve().parent.parent / "docs" / "teaching.md"
HEADING = "## Where the course material slips"


def section() -> str:
    text = DOC.read_text()
    start = text.index(HEADING)
    end = text.find("\n## ", start + len(HEADING))
    return text[start : end if end >= 0 else len(text)]


def test_every_example_prints_what_the_page_shows():
    # the python blocks of the section, one doctest with shared names, in page order
    blocks = re.findall(r"```python\n(.*?)```", section(), flags=re.S)
    assert len(blocks) >= 5, "one example per slip"
    test = doctest.DocTestParser().get_doctest(
        "\n".join(blocks), globs={}, name="teaching.md slips", filename=str(DOC), lineno=0
    )
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    runner.run(test)
    assert runner.failures == 0, f"{runner.failures} example(s) print something else"


def test_every_race_command_prints_the_table_shown():
    pairs = re.findall(
        r"```bash\n(python -m gradchain race .*?)\n```\n```text\n(.*?)```", section(), flags=re.S
    )
    assert pairs, "the widget's race is shown as a command and its table"
    for command, shown in pairs:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            assert race.main(shlex.split(command)[4:]) == 0
        # the command's last line is its run time, which the page leaves out
        printed = [ln.rstrip() for ln in out.getvalue().splitlines() if ln.strip()]
        printed = [ln for ln in printed if not re.match(r"ran \d+ runs? in", ln)]
        assert printed == [ln.rstrip() for ln in shown.splitlines() if ln.strip()], command
