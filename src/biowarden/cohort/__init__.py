"""Cohort: the data dictionary, readers, and the synthetic UK-Biobank-like cohort."""
