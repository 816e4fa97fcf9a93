"""A small UK-Biobank-like cohort for the trace tests and benchmark, and release helpers.

The platform's synthetic cohort lives in :mod:`biowarden.cohort.synth`; this generator is a compact
stand-in with the same column naming and the relations tracing cares about (BMI computed from height and
weight; blood pressure depending on age, sex and BMI), so the fingerprint can be evaluated without
depending on the cohort area. :func:`cohort` uses ``biowarden.cohort.synth`` when asked and available.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Sequence

import numpy as np
import pyarrow as pa

from biowarden.cohort.fields import Field, Role, ValueType
from biowarden.keys import KeyRing
from biowarden.trace.embed import MarkingPolicy, mark_release
from biowarden.trace.releases import ReleaseRecord

# (field id, name, precision, mean, sd) of extra continuous measures (blood biochemistry and the like)
_EXTRA = [
    (30690, "Cholesterol", 3, 5.7, 1.1),
    (30760, "HDL cholesterol", 3, 1.45, 0.38),
    (30780, "LDL direct", 3, 3.56, 0.87),
    (30870, "Triglycerides", 3, 1.74, 1.0),
    (30740, "Glucose", 3, 5.1, 1.2),
    (30750, "Glycated haemoglobin (HbA1c)", 1, 36.0, 6.7),
    (30710, "C-reactive protein", 2, 2.6, 4.3),
    (30000, "White blood cell count", 2, 6.9, 2.0),
    (30010, "Red blood cell count", 3, 4.5, 0.4),
    (30020, "Haemoglobin concentration", 2, 14.1, 1.2),
    (30080, "Platelet count", 1, 252.0, 60.0),
    (30600, "Albumin", 2, 45.2, 2.6),
    (30700, "Creatinine", 1, 72.0, 18.0),
    (30670, "Urea", 2, 5.4, 1.4),
    (30880, "Urate", 1, 309.0, 80.0),
    (30890, "Vitamin D", 1, 48.0, 21.0),
    (23099, "Body fat percentage", 1, 31.4, 8.5),
    (23102, "Whole body water mass", 1, 39.7, 8.2),
]


def dictionary(extra_measures: int = 10) -> dict[int, Field]:
    """Field id -> Field for the columns :func:`toy_cohort` makes."""
    f = [
        Field(31, "Sex", ValueType.CATEGORICAL_SINGLE, Role.QUASI, coding=9),
        Field(34, "Year of birth", ValueType.INTEGER, Role.QUASI, precision=0),
        Field(21022, "Age at recruitment", ValueType.INTEGER, Role.QUASI, units="years", precision=0),
        Field(189, "Townsend deprivation index at recruitment", ValueType.CONTINUOUS, Role.QUASI, precision=5),
        Field(53, "Date of attending assessment centre", ValueType.DATE, Role.QUASI),
        Field(50, "Standing height", ValueType.CONTINUOUS, Role.MEASURE, units="cm", precision=1),
        Field(21002, "Weight", ValueType.CONTINUOUS, Role.MEASURE, units="kg", precision=1),
        Field(
            21001,
            "Body mass index (BMI)",
            ValueType.CONTINUOUS,
            Role.MEASURE,
            units="Kg/m2",
            precision=4,
            derived_from=(21002, 50),
            derivation="21002 / (50 / 100)^2",
        ),
        Field(4080, "Systolic blood pressure, automated reading", ValueType.INTEGER, Role.MEASURE, "mmHg", precision=0),
        Field(
            4079, "Diastolic blood pressure, automated reading", ValueType.INTEGER, Role.MEASURE, "mmHg", precision=0
        ),
        Field(102, "Pulse rate, automated reading", ValueType.INTEGER, Role.MEASURE, "bpm", precision=0),
        Field(46, "Hand grip strength (left)", ValueType.INTEGER, Role.MEASURE, "Kg", precision=0),
        Field(47, "Hand grip strength (right)", ValueType.INTEGER, Role.MEASURE, "Kg", precision=0),
        Field(22182, "Genotype rs429358 (APOE)", ValueType.INTEGER, Role.GENETIC, precision=0),
    ]
    for fid, name, prec, _m, _s in _EXTRA[:extra_measures]:
        f.append(Field(fid, name, ValueType.CONTINUOUS, Role.MEASURE, precision=prec))
    return {x.field_id: x for x in f}


def toy_cohort(n: int, seed: int = 0, extra_measures: int = 10, first_eid: int = 1_000_000) -> pa.Table:
    """``n`` participants with sex, birth year, age, Townsend, assessment date, body size, blood pressure,
    pulse, grip, one genotype and ``extra_measures`` biochemistry columns."""
    rng = np.random.default_rng(seed)
    eid = first_eid + np.sort(rng.choice(n * 5, size=n, replace=False)).astype(np.int64)
    sex = rng.integers(0, 2, n)
    age = rng.integers(40, 71, n)
    year = 2008 - age
    townsend = np.round(rng.normal(-1.3, 3.0, n), 5)
    day0 = (_dt.date(2006, 3, 1) - _dt.date(1970, 1, 1)).days
    date = day0 + rng.integers(0, 4 * 365, n)
    height = np.round(np.where(sex == 1, 175.8, 162.5) + rng.normal(0, 6.6, n), 1)
    bmi_true = np.clip(rng.lognormal(np.log(27.0), 0.16, n), 15, 60)
    weight = np.round(bmi_true * (height / 100) ** 2, 1)
    bmi = np.round(weight / (height / 100) ** 2, 4)
    sbp = np.round(100 + 0.6 * age + 4 * sex + 0.9 * bmi + rng.normal(0, 17, n)).astype(np.int64)
    dbp = np.round(45 + 0.1 * age + 3 * sex + 0.8 * bmi + rng.normal(0, 10.5, n)).astype(np.int64)
    pulse = np.round(rng.normal(70, 11, n)).astype(np.int64)
    grip_r = np.round(np.where(sex == 1, 40, 25) + rng.normal(0, 8.5, n)).clip(0).astype(np.int64)
    grip_l = (grip_r + np.round(rng.normal(-1, 3, n))).clip(0).astype(np.int64)
    geno = rng.choice([0, 1, 2], n, p=[0.72, 0.25, 0.03]).astype(np.int64)
    cols: dict[str, pa.Array] = {
        "eid": pa.array(eid),
        "31-0.0": pa.array(sex),
        "34-0.0": pa.array(year),
        "21022-0.0": pa.array(age),
        "189-0.0": pa.array(townsend),
        "53-0.0": pa.array(date.astype(np.int32)).cast(pa.date32()),
        "50-0.0": pa.array(height),
        "21002-0.0": pa.array(weight),
        "21001-0.0": pa.array(bmi),
        "4080-0.0": pa.array(sbp),
        "4079-0.0": pa.array(dbp),
        "102-0.0": pa.array(pulse),
        "46-0.0": pa.array(grip_l),
        "47-0.0": pa.array(grip_r),
        "22182-0.0": pa.array(geno),
    }
    for fid, _name, prec, mean, sd in _EXTRA[:extra_measures]:
        v = np.round(np.abs(rng.normal(mean, sd, n)), prec)
        missing = rng.random(n) < 0.03
        cols[f"{fid}-0.0"] = pa.array(v, mask=missing)
    return pa.table(cols)


def make_releases(
    master: pa.Table,
    applications: Sequence[int],
    keyring: KeyRing,
    dictionary_: dict,
    participants: int | None = None,
    seed: int = 1,
    columns: Sequence[str] | None = None,
) -> tuple[dict[int, pa.Table], list[ReleaseRecord]]:
    """Marked copies for each application (each a random subset of participants) and their records."""
    rng = np.random.default_rng(seed)
    cols = list(columns) if columns is not None else master.schema.names
    if "eid" not in cols:
        cols = ["eid", *cols]
    base = master.select(cols)
    policy = MarkingPolicy.from_dictionary(dictionary_, cols, data=base)
    copies: dict[int, pa.Table] = {}
    records: list[ReleaseRecord] = []
    for a in applications:
        if participants is not None and participants < master.num_rows:
            rows = np.sort(rng.choice(master.num_rows, participants, replace=False))
            t = base.take(pa.array(rows))
        else:
            t = base
        marked, _rep = mark_release(t, policy, a, keyring)
        copies[a] = marked
        records.append(
            ReleaseRecord(
                release_id=f"rel-{a}",
                application_id=f"APP-{a}",
                application_no=a,
                institution=f"Institution {a % 97}",
                created_at="2026-04-01T00:00:00+00:00",
                fields=tuple(c for c in cols if c != "eid"),
                eids=np.asarray(t.column("eid").to_numpy(), dtype=np.int64),
                data_version="toy-1",
            )
        )
    return copies, records
