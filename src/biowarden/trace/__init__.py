"""Accountability: fingerprints, canaries, pseudonyms and the tracing of leaks (core layer).

Kernels here work on Arrow tables, NumPy arrays and plain dataclasses; they import no web framework and no
ORM, so the data plane can run them per Arrow batch (DuckDB locally, Spark executors at scale).

- :mod:`biowarden.trace.pseudonym`: per-application pseudonymous participant IDs (MAC-tagged namespaces).
- :mod:`biowarden.trace.code`: the symmetric Tardos code, one position per marked (participant, field) cell.
- :mod:`biowarden.trace.embed`: marking a release (``mark_release``, ``mark_batch``) and reading marks back.
- :mod:`biowarden.trace.bounds`: rigorous tail bounds (exact Chernoff, Bennett, binomial).
- :mod:`biowarden.trace.canary`: optional canary participants assigned to applications by a code.
- :mod:`biowarden.trace.protect`: what the release pipeline calls (canaries, then marks decided on the
  released values) and the custodian's trace options (``HOME/trace.json``).
- :mod:`biowarden.trace.releases`: release records (evidence and candidate narrowing).
- :mod:`biowarden.trace.accuse`: scoring, p-values and the verdict (``trace_table``, ``trace_file``).
- :mod:`biowarden.trace.attacks`: an attack simulator that makes leaks from released copies.
"""
