"""The Monday report: one document a week for reviewers (HTML and PDF).

:mod:`report.week` names the week, :mod:`report.data` reads a run directory,
:mod:`report.model` computes every figure (no I/O; the interval and trend arithmetic is
in :mod:`report.stats`), :mod:`report.plots` draws them and
:mod:`report.render` writes ``report.html``, ``report.pdf`` and ``report.json``. Methods are
described in docs/report.md.
"""
