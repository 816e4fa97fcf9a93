"""The platform's cohort: validating a cohort folder and installing it into the home.

A cohort folder holds ``cohort.parquet`` (one row per participant, column ``eid`` plus dictionary
columns) and ``dictionary.tsv`` (annotated showcase layout). ``validate_cohort`` checks that every column
is known to the dictionary with an Arrow type that fits its value type and that ``eid`` is present,
non-null and unique; ``install_cohort`` copies a valid folder into ``<home>/cohort`` atomically;
``load_cohort`` finds the installed (or any) cohort folder and returns its Parquet path and dictionary.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from biowarden.cohort.dictionary import Dictionary, DictionaryError, arrow_type_fits, read_dictionary
from biowarden.cohort.fields import PARTICIPANT_COLUMN
from biowarden.cohort.synth import COHORT_FILE, DICTIONARY_FILE, MANIFEST


class CohortError(ValueError):
    """A cohort folder that is missing, unreadable or inconsistent with its dictionary."""


@dataclass(frozen=True)
class CohortCheck:
    parquet: Path
    dictionary_path: Path
    dictionary: Dictionary
    participants: int
    columns: int
    unused_fields: tuple[int, ...]  # dictionary fields with no column in the Parquet file


def _locate(path: Path) -> Path:
    if (path / COHORT_FILE).exists() or (path / DICTIONARY_FILE).exists():
        return path
    if (path / "cohort" / COHORT_FILE).exists():
        return path / "cohort"
    return path


def validate_cohort(directory: str | os.PathLike[str]) -> CohortCheck:
    """Check DIR/cohort.parquet against DIR/dictionary.tsv; raise CohortError naming the first problem."""
    d = Path(directory)
    if not d.is_dir():
        raise CohortError(f"{d}: not a folder")
    parquet, dict_path = d / COHORT_FILE, d / DICTIONARY_FILE
    for p in (parquet, dict_path):
        if not p.is_file():
            raise CohortError(f"{d}: missing {p.name}")
    try:
        dictionary = read_dictionary(dict_path)
    except DictionaryError as exc:
        raise CohortError(str(exc)) from None
    try:
        meta = pq.read_metadata(parquet)
        schema = meta.schema.to_arrow_schema()
    except (pa.ArrowException, OSError) as exc:
        raise CohortError(f"{parquet}: not a readable Parquet file ({exc})") from None
    names = schema.names
    if PARTICIPANT_COLUMN not in names:
        raise CohortError(f"{parquet}: no participant column {PARTICIPANT_COLUMN!r}")
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise CohortError(f"{parquet}: duplicate column(s) {', '.join(dup)}")
    if not pa.types.is_integer(schema.field(PARTICIPANT_COLUMN).type):
        raise CohortError(
            f"{parquet}: {PARTICIPANT_COLUMN!r} must be an integer column, not {schema.field(PARTICIPANT_COLUMN).type}"
        )
    for name in names:
        if name == PARTICIPANT_COLUMN:
            continue
        try:
            f = dictionary.for_column(name)
        except DictionaryError as exc:
            raise CohortError(f"{parquet}: column {name!r} is not in the dictionary ({exc})") from None
        typ = schema.field(name).type
        if not arrow_type_fits(f, typ):
            raise CohortError(
                f"{parquet}: column {name!r} has Arrow type {typ}, which does not fit field {f.field_id} "
                f"({f.name!r}, {f.value_type.value}{', list column' if f.listed else ''})"
            )
    try:
        eid = pq.read_table(parquet, columns=[PARTICIPANT_COLUMN]).column(0)
    except (pa.ArrowException, OSError) as exc:
        raise CohortError(f"{parquet}: cannot read {PARTICIPANT_COLUMN!r} ({exc})") from None
    if eid.null_count:
        raise CohortError(f"{parquet}: {eid.null_count} row(s) have no {PARTICIPANT_COLUMN}")
    distinct = pc.count_distinct(eid).as_py()
    if distinct != len(eid):
        raise CohortError(f"{parquet}: {PARTICIPANT_COLUMN} is not unique ({len(eid) - distinct} duplicate row(s))")
    present = {dictionary.for_column(n).field_id for n in names if n != PARTICIPANT_COLUMN}
    unused = tuple(f.field_id for f in dictionary if f.field_id not in present)
    return CohortCheck(parquet, dict_path, dictionary, len(eid), len(names), unused)


def install_cohort(source: str | os.PathLike[str], home: str | os.PathLike[str]) -> CohortCheck:
    """Validate SOURCE and make it the platform's cohort in ``<home>/cohort`` (all or nothing)."""
    src = Path(source).resolve()
    check = validate_cohort(src)
    home_p = Path(home).resolve()
    home_p.mkdir(parents=True, exist_ok=True)
    target = home_p / "cohort"
    if src == target:
        return check
    staging = Path(tempfile.mkdtemp(prefix=".cohort.new-", dir=home_p))
    try:
        for name in (COHORT_FILE, DICTIONARY_FILE, MANIFEST):
            if (src / name).exists():
                shutil.copy2(src / name, staging / name)
        old: Path | None = None
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=".cohort.old-", dir=home_p))
            os.replace(target, old / "cohort")
        try:
            os.replace(staging, target)
        except BaseException:
            if old is not None:
                os.replace(old / "cohort", target)
            raise
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return validate_cohort(target)


def load_cohort(home_or_dir: str | os.PathLike[str] | None = None) -> tuple[Path, Dictionary]:
    """The cohort's Parquet path and dictionary, from a cohort folder or a home (its ``cohort/``).

    With no argument, the home of ``load_settings()``.
    """
    if home_or_dir is None:
        from biowarden.config import load_settings

        home_or_dir = load_settings().home
    d = _locate(Path(home_or_dir))
    parquet, dict_path = d / COHORT_FILE, d / DICTIONARY_FILE
    if not parquet.is_file() or not dict_path.is_file():
        raise CohortError(
            f"no cohort in {home_or_dir} (expected {COHORT_FILE} and {DICTIONARY_FILE}, or a home with cohort/); "
            "run `biowarden cohort synth` and `biowarden cohort import`"
        )
    try:
        return parquet, read_dictionary(dict_path)
    except DictionaryError as exc:
        raise CohortError(str(exc)) from None
