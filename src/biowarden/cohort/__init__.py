"""Cohort: the data dictionary, readers, and the synthetic UK-Biobank-like cohort.

Public API (see each module):

- ``Dictionary``, ``read_dictionary``, ``read_showcase``, ``write_dictionary``, ``parse_hierarchy_spec``,
  ``DictionaryError`` (``biowarden.cohort.dictionary``);
- ``synthesise(participants, seed, out_dir, progress=None) -> SynthReport`` and the in-memory fixture
  ``synthesise_table(participants, seed) -> (pa.Table, Dictionary)`` (``biowarden.cohort.synth``);
- ``load_cohort(home_or_dir) -> (parquet Path, Dictionary)``, ``validate_cohort``, ``install_cohort``
  (``biowarden.cohort.store``);
- ``compute_derived(field, inputs)`` (``biowarden.cohort.derive``): recompute BMI / age from inputs.

Imports are lazy so that ``import biowarden.cohort.fields`` stays light.
"""

from __future__ import annotations

from typing import Any

_EXPORTS = {
    "Dictionary": "biowarden.cohort.dictionary",
    "DictionaryError": "biowarden.cohort.dictionary",
    "HierarchySpec": "biowarden.cohort.dictionary",
    "parse_hierarchy_spec": "biowarden.cohort.dictionary",
    "read_dictionary": "biowarden.cohort.dictionary",
    "read_showcase": "biowarden.cohort.dictionary",
    "write_dictionary": "biowarden.cohort.dictionary",
    "synthesise": "biowarden.cohort.synth",
    "synthesise_table": "biowarden.cohort.synth",
    "cohort_dictionary": "biowarden.cohort.synth",
    "SynthReport": "biowarden.cohort.synth",
    "load_cohort": "biowarden.cohort.store",
    "validate_cohort": "biowarden.cohort.store",
    "install_cohort": "biowarden.cohort.store",
    "CohortError": "biowarden.cohort.store",
    "compute_derived": "biowarden.cohort.derive",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'biowarden.cohort' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
