"""The synthetic UK-Biobank-like cohort: the embedded default data.

``synthesise(participants, seed, out_dir)`` streams ``cohort.parquet`` (zstd, one row per participant,
sorted by ``eid``) and ``dictionary.tsv`` into ``out_dir``; ``synthesise_table(participants, seed)``
returns the same data in memory (for tests). Columns follow the showcase's ``<field>-<instance>.<array>``
naming with the showcase's own field ids and names (instance 0, the baseline visit 2006-2010).

Determinism: rows are generated in fixed blocks of ``BLOCK_ROWS`` participants, each block from its own
``SeedSequence(seed, spawn_key=(1, block))``; eids come from a separate stream. So the output depends
only on (participants, seed, GENERATOR_VERSION), never on the chunk size used to stream it.

What it models (plausible, not real): 22 assessment centres with their approximate sizes, locations and
opening periods; birth years 1934-1971 and age at recruitment derived exactly from birth year/month and
the assessment date; home location as OSGB easting/northing rounded to 1 km around the centre; Townsend
deprivation following the centre, the distance to its urban core and the 1 km cell; ethnic background
varying by centre; qualifications and employment (set-valued), smoking, alcohol; height, weight and
grip by sex; BMI derived exactly from height and weight; blood pressure and diagnosis rates rising with
age; a panel of blood biochemistry and blood count with the recorded precision; ICD-10 diagnoses and
OPCS-4 operations with dates (smoking -> lung disease, diabetes -> HbA1c, cataract -> lens operation...);
and 40 SNP genotypes (0/1/2, Hardy-Weinberg within ancestry groups, frequencies of European and other
ancestries).
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from biowarden.cohort.derive import compute_derived
from biowarden.cohort.dictionary import GENOTYPE_FIELD_MIN, Dictionary, write_dictionary
from biowarden.cohort.fields import PARTICIPANT_COLUMN, Field, Role, ValueType

GENERATOR_VERSION = "biowarden-synth/1"
BLOCK_ROWS = 10_000
DEFAULT_CHUNK_ROWS = 50_000
EID_MIN = 1_000_000
EID_MAX = 5_999_999
MANIFEST = "manifest.json"
COHORT_FILE = "cohort.parquet"
DICTIONARY_FILE = "dictionary.tsv"

ProgressFn = Callable[[int, int], None]

_EPOCH = np.datetime64("1970-01-01", "D")


def _day(s: str) -> int:
    return int((np.datetime64(s, "D") - _EPOCH).astype(np.int64))


# code, name, approximate participants, centre easting, northing (OSGB m), Townsend mean, first and last
# day of baseline recruitment, multiplier of non-white ethnic backgrounds relative to the cohort
CENTRES: tuple[tuple[int, str, int, int, int, float, str, str, float], ...] = (
    (10003, "Stockport (pilot)", 3_800, 389_000, 390_000, -1.2, "2006-03-13", "2006-07-28", 0.8),
    (11001, "Manchester", 29_000, 384_000, 398_000, 0.4, "2006-12-04", "2010-06-30", 1.6),
    (11002, "Oxford", 19_000, 451_000, 206_000, -2.3, "2007-03-12", "2010-06-30", 0.8),
    (11003, "Cardiff", 18_500, 318_000, 176_000, -0.7, "2007-01-15", "2010-06-30", 0.7),
    (11004, "Glasgow", 18_000, 259_000, 665_000, 1.4, "2007-04-16", "2010-06-30", 0.5),
    (11005, "Edinburgh", 17_500, 325_000, 673_000, -1.1, "2007-05-14", "2010-07-30", 0.5),
    (11006, "Stoke", 22_000, 388_000, 347_000, -0.8, "2007-02-05", "2010-07-15", 0.6),
    (11007, "Reading", 30_000, 471_000, 173_000, -2.4, "2007-06-11", "2010-07-30", 1.6),
    (11008, "Bury", 30_000, 380_000, 410_000, -0.9, "2006-08-07", "2010-07-16", 1.0),
    (11009, "Newcastle", 37_000, 425_000, 564_000, -0.5, "2006-12-11", "2010-07-30", 0.5),
    (11010, "Leeds", 45_500, 430_000, 433_000, -1.0, "2007-01-08", "2010-07-30", 1.1),
    (11011, "Bristol", 44_500, 359_000, 173_000, -2.0, "2007-04-16", "2010-07-30", 0.7),
    (11012, "Barts", 20_000, 532_000, 181_000, 2.7, "2008-03-03", "2010-09-30", 5.0),
    (11013, "Nottingham", 39_000, 457_000, 340_000, -1.1, "2007-06-04", "2010-07-30", 1.3),
    (11014, "Sheffield", 30_500, 435_000, 387_000, -1.2, "2007-09-03", "2010-07-30", 0.9),
    (11016, "Liverpool", 34_000, 335_000, 390_000, 0.3, "2007-10-01", "2010-07-30", 0.7),
    (11017, "Middlesborough", 20_500, 449_000, 519_000, -0.2, "2007-11-05", "2010-07-30", 0.5),
    (11018, "Hounslow", 30_000, 513_000, 175_000, 0.2, "2008-04-07", "2010-09-30", 4.0),
    (11020, "Croydon", 28_000, 532_000, 165_000, 0.0, "2008-06-02", "2010-09-30", 3.5),
    (11021, "Birmingham", 30_000, 407_000, 286_000, 0.3, "2008-01-07", "2010-09-30", 3.0),
    (11022, "Swansea", 2_500, 265_000, 193_000, -0.4, "2009-11-02", "2010-07-30", 0.3),
    (11023, "Wrexham", 350, 333_000, 350_000, -1.0, "2010-04-12", "2010-07-16", 0.3),
)

# Ethnic background (coding 1001): code, cohort share, non-white (scaled by the centre's multiplier)
ETHNICITY: tuple[tuple[int, float, bool], ...] = (
    (1001, 0.8850, False),
    (1002, 0.0260, False),
    (1003, 0.0330, False),
    (2001, 0.0012, True),
    (2002, 0.0008, True),
    (2003, 0.0017, True),
    (2004, 0.0020, True),
    (3001, 0.0118, True),
    (3002, 0.0036, True),
    (3003, 0.0005, True),
    (3004, 0.0036, True),
    (4001, 0.0090, True),
    (4002, 0.0067, True),
    (4003, 0.0003, True),
    (5, 0.0031, True),
    (6, 0.0090, True),
    (-1, 0.0004, False),
    (-3, 0.0033, False),
)

# 40 SNPs: (rsid, counted allele, frequency in European ancestry, in other ancestries)
SNPS: tuple[tuple[str, str, float, float], ...] = (
    ("rs429358", "C", 0.15, 0.20),
    ("rs7412", "T", 0.08, 0.10),
    ("rs9939609", "A", 0.41, 0.30),
    ("rs17782313", "C", 0.24, 0.20),
    ("rs1801133", "T", 0.33, 0.20),
    ("rs4988235", "A", 0.74, 0.15),
    ("rs12913832", "G", 0.72, 0.05),
    ("rs1815739", "T", 0.42, 0.25),
    ("rs1800562", "A", 0.07, 0.01),
    ("rs1799945", "G", 0.15, 0.05),
    ("rs6025", "A", 0.03, 0.005),
    ("rs1799963", "A", 0.015, 0.003),
    ("rs7903146", "T", 0.30, 0.28),
    ("rs1333049", "C", 0.48, 0.45),
    ("rs10757278", "G", 0.47, 0.42),
    ("rs4680", "A", 0.50, 0.35),
    ("rs6265", "T", 0.20, 0.35),
    ("rs1801282", "G", 0.12, 0.07),
    ("rs5219", "T", 0.37, 0.25),
    ("rs13266634", "T", 0.30, 0.25),
    ("rs2476601", "A", 0.10, 0.01),
    ("rs3135388", "A", 0.15, 0.05),
    ("rs2187668", "T", 0.11, 0.04),
    ("rs11591147", "T", 0.02, 0.005),
    ("rs738409", "G", 0.23, 0.35),
    ("rs58542926", "T", 0.07, 0.04),
    ("rs1229984", "T", 0.03, 0.35),
    ("rs671", "A", 0.001, 0.10),
    ("rs762551", "C", 0.30, 0.40),
    ("rs4244285", "A", 0.15, 0.30),
    ("rs1057910", "C", 0.07, 0.03),
    ("rs9923231", "T", 0.39, 0.50),
    ("rs2228570", "A", 0.38, 0.20),
    ("rs1800497", "A", 0.19, 0.38),
    ("rs1801260", "G", 0.27, 0.20),
    ("rs1805007", "T", 0.10, 0.01),
    ("rs16891982", "G", 0.95, 0.30),
    ("rs1426654", "A", 0.99, 0.60),
    ("rs2814778", "C", 0.01, 0.45),
    ("rs334", "T", 0.001, 0.04),
)

# ICD-10 (coding 19): code, base rate by ~57 years, log-rate per year of age, male multiplier
_ICD10: tuple[tuple[str, float, float, float], ...] = (
    ("I10", 0.0, 0.0, 1.0),  # hypertension: from its own model
    ("E119", 0.0, 0.0, 1.0),  # type 2 diabetes: from the latent diabetes state
    ("E780", 0.09, 0.04, 1.1),
    ("I251", 0.030, 0.07, 2.2),
    ("I219", 0.018, 0.06, 2.5),
    ("I209", 0.030, 0.06, 1.8),
    ("I48", 0.040, 0.10, 1.5),
    ("I639", 0.012, 0.09, 1.3),
    ("J449", 0.025, 0.06, 1.2),
    ("J459", 0.070, 0.00, 0.8),
    ("C349", 0.004, 0.08, 1.2),
    ("C509", 0.045, 0.03, 0.01),
    ("C61", 0.045, 0.09, 1.0),
    ("C189", 0.008, 0.07, 1.3),
    ("C443", 0.030, 0.06, 1.2),
    ("K573", 0.070, 0.07, 0.8),
    ("K219", 0.090, 0.03, 1.0),
    ("K802", 0.040, 0.03, 0.5),
    ("M179", 0.060, 0.06, 0.8),
    ("M8199", 0.020, 0.10, 0.2),
    ("N390", 0.050, 0.05, 0.4),
    ("F329", 0.050, 0.00, 0.65),
    ("G309", 0.003, 0.15, 1.0),
    ("E669", 0.0, 0.0, 1.0),  # obesity: from BMI
    ("K409", 0.012, 0.03, 5.0),
    ("H269", 0.060, 0.10, 0.9),
    ("M545", 0.050, 0.00, 0.9),
    ("D649", 0.050, 0.04, 0.7),
    ("E039", 0.040, 0.02, 0.25),
    ("N183", 0.020, 0.10, 1.1),
)
ICD10_CODES: tuple[str, ...] = tuple(c for c, *_ in _ICD10)

# OPCS-4 (coding 240): code, base rate, log-rate per year, male multiplier, linked ICD-10 code, P(op | dx)
_OPCS4: tuple[tuple[str, float, float, float, str | None, float], ...] = (
    ("G451", 0.120, 0.03, 1.0, "K219", 0.6),
    ("H221", 0.080, 0.04, 1.0, "C189", 0.9),
    ("C751", 0.010, 0.10, 0.9, "H269", 0.8),
    ("W401", 0.012, 0.07, 0.8, "M179", 0.45),
    ("W371", 0.025, 0.07, 0.8, None, 0.0),
    ("K401", 0.002, 0.05, 2.0, "I251", 0.12),
    ("K751", 0.004, 0.05, 2.0, "I251", 0.35),
    ("Q073", 0.045, 0.02, 0.0, None, 0.0),
    ("J183", 0.010, 0.03, 0.5, "K802", 0.6),
    ("T202", 0.005, 0.03, 4.0, "K409", 0.75),
    ("M653", 0.015, 0.08, 1.0, "C61", 0.3),
    ("B274", 0.000, 0.00, 0.0, "C509", 0.4),
    ("S068", 0.060, 0.05, 1.1, "C443", 0.7),
    ("H011", 0.030, 0.00, 1.1, None, 0.0),
    ("A651", 0.030, 0.03, 0.5, None, 0.0),
)
OPCS4_CODES: tuple[str, ...] = tuple(c for c, *_ in _OPCS4)

_HES_START = _day("1997-04-01")
_FOLLOW_UP_END = _day("2022-10-31")

# qualifications (coding 100305) and employment (coding 100295) in the order they appear in a list
_QUAL_CODES = np.array([1, 2, 3, 4, 5, 6, -7, -3], dtype=np.int32)
_EMPLOY_CODES = np.array([1, 2, 3, 4, 5, 6, 7, -7, -3], dtype=np.int32)


# --------------------------------------------------------------------------------------------------
# The dictionary


def _f(fid: int, name: str, vt: ValueType, role: Role, units: str = "", **kw: object) -> Field:
    if vt is ValueType.INTEGER and "precision" not in kw:
        kw["precision"] = 0
    return Field(field_id=fid, name=name, value_type=vt, role=role, units=units, **kw)  # type: ignore[arg-type]


_C, _I, _S, _M, _D = (
    ValueType.CONTINUOUS,
    ValueType.INTEGER,
    ValueType.CATEGORICAL_SINGLE,
    ValueType.CATEGORICAL_MULTIPLE,
    ValueType.DATE,
)
_Q, _MEAS, _SENS, _GEN = Role.QUASI, Role.MEASURE, Role.SENSITIVE, Role.GENETIC

# blood assays: field id, name, units, precision, category
_BLOOD: tuple[tuple[int, str, str, int, str], ...] = (
    (30000, "White blood cell (leukocyte) count", "10^9 cells/Litre", 2, "100081"),
    (30010, "Red blood cell (erythrocyte) count", "10^12 cells/Litre", 3, "100081"),
    (30020, "Haemoglobin concentration", "grams/decilitre", 2, "100081"),
    (30030, "Haematocrit percentage", "percent", 2, "100081"),
    (30040, "Mean corpuscular volume", "femtolitres", 2, "100081"),
    (30080, "Platelet count", "10^9 cells/Litre", 1, "100081"),
    (30600, "Albumin", "g/L", 2, "17518"),
    (30610, "Alkaline phosphatase", "U/L", 1, "17518"),
    (30620, "Alanine aminotransferase", "U/L", 2, "17518"),
    (30630, "Apolipoprotein A", "g/L", 3, "17518"),
    (30640, "Apolipoprotein B", "g/L", 3, "17518"),
    (30650, "Aspartate aminotransferase", "U/L", 1, "17518"),
    (30660, "Direct bilirubin", "umol/L", 2, "17518"),
    (30670, "Urea", "mmol/L", 2, "17518"),
    (30680, "Calcium", "mmol/L", 3, "17518"),
    (30690, "Cholesterol", "mmol/L", 3, "17518"),
    (30700, "Creatinine", "umol/L", 1, "17518"),
    (30710, "C-reactive protein", "mg/L", 2, "17518"),
    (30720, "Cystatin C", "mg/L", 3, "17518"),
    (30730, "Gamma glutamyltransferase", "U/L", 1, "17518"),
    (30740, "Glucose", "mmol/L", 3, "17518"),
    (30750, "Glycated haemoglobin (HbA1c)", "mmol/mol", 1, "17518"),
    (30760, "HDL cholesterol", "mmol/L", 3, "17518"),
    (30770, "IGF-1", "nmol/L", 3, "17518"),
    (30780, "LDL direct", "mmol/L", 3, "17518"),
    (30790, "Lipoprotein A", "nmol/L", 2, "17518"),
    (30800, "Oestradiol", "pmol/L", 2, "17518"),
    (30810, "Phosphate", "mmol/L", 3, "17518"),
    (30820, "Rheumatoid factor", "IU/ml", 2, "17518"),
    (30830, "SHBG", "nmol/L", 2, "17518"),
    (30840, "Total bilirubin", "umol/L", 2, "17518"),
    (30850, "Testosterone", "nmol/L", 3, "17518"),
    (30860, "Total protein", "g/L", 2, "17518"),
    (30870, "Triglycerides", "mmol/L", 3, "17518"),
    (30880, "Urate", "umol/L", 1, "17518"),
    (30890, "Vitamin D", "nmol/L", 1, "17518"),
)


def cohort_dictionary() -> Dictionary:
    """The data dictionary of the synthetic cohort (the field order is the column order)."""
    fields: list[Field] = [
        _f(31, "Sex", _S, _Q, coding=9, category="100094"),
        _f(34, "Year of birth", _I, _Q, "years", hierarchy="interval:5,10,20", category="100094"),
        _f(52, "Month of birth", _S, _Q, coding=8, hierarchy="coding:month-quarter", category="100094"),
        _f(53, "Date of attending assessment centre", _D, _Q, hierarchy="date:month,quarter,year", category="100024"),
        _f(
            54,
            "UK Biobank assessment centre",
            _S,
            _Q,
            coding=10,
            hierarchy="coding:ukb-centre-region",
            category="100024",
        ),
        _f(
            21022,
            "Age at recruitment",
            _I,
            _Q,
            "years",
            hierarchy="interval:5,10,20",
            derived_from=(34, 52, 53),
            derivation="age_at_recruitment",
            category="100094",
        ),
        _f(
            189,
            "Townsend deprivation index at recruitment",
            _C,
            _Q,
            precision=2,
            hierarchy="interval:1,2,5,10",
            category="76",
        ),
        _f(
            20074,
            "Home location at assessment - east co-ordinate (rounded)",
            _I,
            _Q,
            "metre-grid",
            hierarchy="interval:5000,10000,50000,100000",
            notes="OSGB easting rounded to 1 km",
        ),
        _f(
            20075,
            "Home location at assessment - north co-ordinate (rounded)",
            _I,
            _Q,
            "metre-grid",
            hierarchy="interval:5000,10000,50000,100000",
            notes="OSGB northing rounded to 1 km",
        ),
        _f(21000, "Ethnic background", _S, _Q, coding=1001, hierarchy="coding:ukb-ethnicity-group", category="100065"),
        _f(6138, "Qualifications", _M, _Q, coding=100305, array=6, category="100063"),
        _f(6142, "Current employment status", _M, _Q, coding=100295, array=7, category="100064"),
        _f(20116, "Smoking status", _S, _MEAS, coding=90, category="100058"),
        _f(1558, "Alcohol intake frequency.", _S, _MEAS, coding=100402, category="100051"),
        _f(1160, "Sleep duration", _I, _MEAS, "hours/day", category="100057"),
        _f(50, "Standing height", _C, _MEAS, "cm", precision=1, category="100010"),
        _f(21002, "Weight", _C, _MEAS, "Kg", precision=1, category="100010"),
        _f(
            21001,
            "Body mass index (BMI)",
            _C,
            _MEAS,
            "Kg/m2",
            precision=4,
            derived_from=(21002, 50),
            derivation="bmi",
            category="100010",
        ),
        _f(48, "Waist circumference", _C, _MEAS, "cm", precision=0, category="100010"),
        _f(49, "Hip circumference", _C, _MEAS, "cm", precision=0, category="100010"),
        _f(23099, "Body fat percentage", _C, _MEAS, "percent", precision=1, category="100009"),
        _f(4080, "Systolic blood pressure, automated reading", _I, _MEAS, "mmHg", category="100011"),
        _f(4079, "Diastolic blood pressure, automated reading", _I, _MEAS, "mmHg", category="100011"),
        _f(102, "Pulse rate, automated reading", _I, _MEAS, "beats per minute", category="100011"),
        _f(46, "Hand grip strength (left)", _I, _MEAS, "Kg", category="100019"),
        _f(47, "Hand grip strength (right)", _I, _MEAS, "Kg", category="100019"),
        _f(3062, "Forced vital capacity (FVC)", _C, _MEAS, "litres", precision=2, category="100020"),
        _f(3063, "Forced expiratory volume in 1-second (FEV1)", _C, _MEAS, "litres", precision=2, category="100020"),
    ]
    fields += [_f(fid, name, _C, _MEAS, units, precision=p, category=cat) for fid, name, units, p, cat in _BLOOD]
    fields += [
        _f(
            41270,
            "Diagnoses - ICD10",
            _M,
            _SENS,
            coding=19,
            array=259,
            hierarchy="coding:icd10-chapter",
            category="2002",
        ),
        _f(
            41280,
            "Date of first in-patient diagnosis - ICD10",
            _D,
            _SENS,
            array=259,
            paired_with=41270,
            category="2002",
        ),
        _f(
            41272,
            "Operative procedures - OPCS4",
            _M,
            _SENS,
            coding=240,
            array=126,
            hierarchy="coding:opcs4-chapter",
            category="2005",
        ),
        _f(
            41282, "Date of first operative procedure - OPCS4", _D, _SENS, array=126, paired_with=41272, category="2005"
        ),
    ]
    for k, (rsid, allele, _, _) in enumerate(SNPS):
        fields.append(
            _f(
                GENOTYPE_FIELD_MIN + 1 + k,
                f"Genotype {rsid} (count of {allele} alleles)",
                _I,
                _GEN,
                "alleles",
                notes=f"biowarden-local genotype field; {rsid}, additive coding 0/1/2",
            )
        )
    return Dictionary(fields)


# --------------------------------------------------------------------------------------------------
# Generation

_CENTRE_CODE = np.array([c[0] for c in CENTRES], dtype=np.int32)
_CENTRE_P = np.array([c[2] for c in CENTRES], dtype=np.float64)
_CENTRE_P /= _CENTRE_P.sum()
_CENTRE_E = np.array([c[3] for c in CENTRES], dtype=np.float64)
_CENTRE_N = np.array([c[4] for c in CENTRES], dtype=np.float64)
_CENTRE_T = np.array([c[5] for c in CENTRES], dtype=np.float64)
_CENTRE_START = np.array([_day(c[6]) for c in CENTRES], dtype=np.int64)
_CENTRE_END = np.array([_day(c[7]) for c in CENTRES], dtype=np.int64)


def _ethnic_cdf() -> np.ndarray:
    base = np.array([p for _, p, _ in ETHNICITY])
    nonwhite = np.array([nw for _, _, nw in ETHNICITY])
    rows = []
    for c in CENTRES:
        p = base.copy()
        p[nonwhite] *= c[8]
        white = ~nonwhite
        p[white] *= (1.0 - p[nonwhite].sum()) / base[white].sum()
        rows.append(np.cumsum(p / p.sum()))
    return np.array(rows)


_ETH_CODE = np.array([c for c, _, _ in ETHNICITY], dtype=np.int32)
_ETH_CDF = _ethnic_cdf()
_SNP_P = np.array([[p_eur, p_oth] for _, _, p_eur, p_oth in SNPS])


def _pick(u: np.ndarray, cdf: np.ndarray) -> np.ndarray:
    """Index of the category of each uniform ``u`` under per-row cdfs (n, K) or one cdf (K,)."""
    if cdf.ndim == 1:
        return np.minimum(np.searchsorted(cdf, u, side="right"), cdf.size - 1)
    return np.minimum((u[:, None] >= cdf).sum(axis=1), cdf.shape[1] - 1)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _cell_effect(east_km: np.ndarray, north_km: np.ndarray, seed: int) -> np.ndarray:
    """A fixed pseudo-random effect in [-1, 1) per 1 km cell (so neighbours in a cell share deprivation)."""
    x = (east_km.astype(np.uint64) << np.uint64(20)) ^ north_km.astype(np.uint64) ^ np.uint64(seed & 0xFFFFFFFF)
    x = x * np.uint64(0x9E3779B97F4A7C15)
    x ^= x >> np.uint64(31)
    x = x * np.uint64(0xBF58476D1CE4E5B9)
    x ^= x >> np.uint64(29)
    return (x >> np.uint64(11)).astype(np.float64) / float(1 << 53) * 2.0 - 1.0


def _lists(mask: np.ndarray, values: np.ndarray, dates: np.ndarray | None, value_type: pa.DataType):
    """Arrow list columns from a (n, K) mask: each row's values (ordered by date when dates are given)."""
    n = mask.shape[0]
    rows, cols = np.nonzero(mask)
    offsets = np.zeros(n + 1, dtype=np.int32)
    np.cumsum(mask.sum(axis=1), out=offsets[1:])
    if dates is not None:
        d = dates[rows, cols]
        order = np.lexsort((cols, d, rows))
        cols = cols[order]
        d = d[order]
    off = pa.array(offsets, pa.int32())
    vals = pa.ListArray.from_arrays(off, pa.array(values[cols], value_type))
    if dates is None:
        return vals, None
    return vals, pa.ListArray.from_arrays(off, pa.array(d.astype(np.int32), pa.date32()))


def _block(seed: int, block: int, eid: np.ndarray) -> dict[str, pa.Array | np.ndarray]:
    """One block of participants (all columns), from the block's own random stream."""
    n = eid.size
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(1, block)))
    normal = rng.standard_normal
    uni = rng.random
    out: dict[str, pa.Array | np.ndarray] = {PARTICIPANT_COLUMN: eid.astype(np.int64)}

    # --- who and where
    male = uni(n) < 0.456
    centre = _pick(uni(n), np.cumsum(_CENTRE_P))
    start, end = _CENTRE_START[centre], _CENTRE_END[centre]
    assess = start + np.floor(uni(n) * (end - start + 1)).astype(np.int64)
    age_years = 38.0 + 34.0 * rng.beta(1.6, 1.15, n)
    dob = assess - np.round(age_years * 365.25).astype(np.int64)
    dob = np.clip(dob, _day("1934-01-01"), _day("1971-12-31"))
    dob_d = dob.astype("datetime64[D]")
    months = dob_d.astype("datetime64[M]").astype(np.int64)
    yob = months // 12 + 1970
    mob = months % 12 + 1
    assess_d = assess.astype("datetime64[D]")
    age = compute_derived(_AGE_FIELD, {34: yob, 52: mob, 53: assess_d})
    ethnic = _ETH_CODE[_pick(uni(n), _ETH_CDF[centre])]
    other_ancestry = (ethnic >= 3000) | (ethnic == 5) | ((ethnic >= 2000) & (uni(n) < 0.5))
    south_asian = (ethnic >= 3001) & (ethnic <= 3004)

    angle = uni(n) * 2.0 * np.pi
    dist_km = np.minimum(np.exp(2.2 + 0.65 * normal(n)), 60.0)
    east = np.round((_CENTRE_E[centre] + 1000.0 * dist_km * np.cos(angle)) / 1000.0) * 1000.0
    north = np.round((_CENTRE_N[centre] + 1000.0 * dist_km * np.sin(angle)) / 1000.0) * 1000.0
    cell = _cell_effect((east // 1000).astype(np.int64), (north // 1000).astype(np.int64), seed)
    noise = 1.5 * normal(n) + 1.2 * (rng.standard_exponential(n) - 1.0)  # right-skewed, as in UK Biobank
    townsend = _CENTRE_T[centre] - 1.4 + 1.8 * np.exp(-dist_km / 6.0) + 1.4 * cell + noise
    townsend = np.round(np.clip(townsend, -6.26, 11.0), 2)

    # --- education, work, lifestyle
    edu = normal(n) + 0.03 * (yob - 1952) - 0.17 * townsend + 0.08 * male
    qual = np.zeros((n, _QUAL_CODES.size), dtype=bool)
    degree = edu > 0.55
    alev = (edu > 0.25) & ~degree
    prof = (edu > 0.0) & ~degree & ~alev
    olev = (edu > -0.55) & (edu <= 0.0)
    cse = (edu > -0.8) & (edu <= -0.55)
    none = edu <= -0.8
    prefer = uni(n) < 0.01
    u = uni((n, 4))
    qual[:, 0] = degree
    qual[:, 1] = alev | (degree & (u[:, 0] < 0.65))
    qual[:, 2] = olev | ((degree | alev | prof) & (u[:, 1] < 0.82))
    qual[:, 3] = cse | (olev & (u[:, 2] < 0.12))
    qual[:, 4] = (~degree & ~none & (u[:, 3] < 0.22)) | (cse & (u[:, 3] < 0.5))
    qual[:, 5] = prof | (degree & (u[:, 2] > 0.7))
    qual[:, 6] = none
    qual[prefer] = False
    qual[:, 7] = prefer
    out["6138-0"] = _lists(qual, _QUAL_CODES, None, pa.int32())[0]

    emp = np.zeros((n, _EMPLOY_CODES.size), dtype=bool)
    retired = uni(n) < _sigmoid((age - 61.5) / 2.3)
    sick = ~retired & (uni(n) < 0.035 * np.exp(0.15 * townsend))
    unemployed = ~retired & ~sick & (uni(n) < 0.018 * np.exp(0.1 * townsend))
    home = ~retired & ~sick & ~unemployed & ~male & (uni(n) < 0.07)
    student = ~retired & (uni(n) < 0.004)
    employed = ~retired & ~sick & ~unemployed & ~home
    emp[:, 0] = employed
    emp[:, 1] = retired
    emp[:, 2] = home
    emp[:, 3] = sick
    emp[:, 4] = unemployed
    emp[:, 5] = uni(n) < np.where(retired, 0.12, 0.02)
    emp[:, 6] = student
    pref = uni(n) < 0.003
    emp[pref] = False
    emp[:, 8] = pref
    out["6142-0"] = _lists(emp, _EMPLOY_CODES, None, pa.int32())[0]

    p_current = np.clip(0.095 * np.exp(0.16 * townsend) * np.where(male, 1.25, 0.82), 0.0, 0.7)
    p_previous = np.clip(0.34 * np.where(male, 1.22, 0.82) * (1.0 + 0.012 * (age - 57)), 0.0, 0.9)
    us = uni(n)
    smoking = np.where(
        us < 0.004, -3, np.where(us < 0.004 + p_current, 2, np.where(us < 0.004 + p_current + p_previous, 1, 0))
    )
    current = smoking == 2
    previous = smoking == 1

    drink = (normal(n) + 0.55 * (male - 0.456) - 0.08 * (townsend + 1.5) + 0.15 * edu - 0.6 * south_asian) / 1.06
    # coding 100402: 1 daily .. 5 special occasions only, 6 never (cohort shares ~.20 .23 .26 .11 .12 .08)
    alcohol = 1 + sum((drink <= cut).astype(np.int64) for cut in (0.8416, 0.1764, -0.4959, -0.8416, -1.4051))
    alcohol = np.where(uni(n) < 0.001, -3, alcohol)

    sleep = np.clip(np.round(7.15 + 1.05 * normal(n) + 0.02 * (age - 57)), 1, 20)

    # --- genotypes (needed by BMI and dementia)
    geno_p = _SNP_P[:, other_ancestry.astype(np.int64)].T  # (n, 40)
    geno = rng.binomial(2, geno_p).astype(np.int8)
    apoe4 = geno[:, 0].astype(np.float64)
    fto = geno[:, 2].astype(np.float64)
    mc4r = geno[:, 3].astype(np.float64)

    # --- body
    height = np.where(male, 175.8, 162.6) + np.where(male, 6.8, 6.2) * normal(n) + 0.12 * (yob - 1952)
    height -= 3.0 * south_asian
    height = np.round(np.clip(height, 130.0, 210.0), 1)
    bmi_latent = np.exp(
        np.log(np.where(male, 27.3, 26.4))
        + np.where(male, 0.15, 0.19) * normal(n)
        + 0.006 * townsend
        + 0.002 * (age - 57)
        + 0.012 * fto
        + 0.008 * mc4r
    )
    weight = np.round(np.clip(bmi_latent * (height / 100.0) ** 2, 32.0, 200.0), 1)
    bmi = compute_derived(_BMI_FIELD, {21002: weight, 50: height})
    waist = np.round(np.where(male, 97.0, 84.5) + 2.4 * (bmi - 27.0) + 5.5 * normal(n) + 0.1 * (age - 57))
    hip = np.round(np.where(male, 103.5, 103.0) + 1.9 * (bmi - 27.0) + 4.5 * normal(n))
    fat = np.round(np.clip(np.where(male, 25.5, 36.5) + 0.95 * (bmi - 27.0) + 3.2 * normal(n), 5.0, 65.0), 1)
    sbp = np.round(136.0 + 0.75 * (age - 57) + 5.0 * male + 0.8 * (bmi - 27.0) + 17.0 * normal(n))
    sbp = np.clip(sbp, 70, 260)
    dbp = np.clip(
        np.round(82.0 + 3.0 * male + 0.55 * (bmi - 27.0) + 0.3 * (sbp - 137.0) - 0.12 * (age - 57) + 8.0 * normal(n)),
        35,
        150,
    )
    pulse = np.clip(np.round(70.0 - 2.5 * male + 3.0 * current + 0.25 * (bmi - 27.0) + 11.0 * normal(n)), 30, 180)
    grip_l = np.clip(
        np.round(np.where(male, 39.0, 23.5) - 0.3 * (age - 57) + np.where(male, 8.5, 5.5) * normal(n)), 0, 90
    )
    grip_r = np.clip(np.round(grip_l + 1.8 + 3.0 * normal(n)), 0, 90)
    fvc = np.where(male, 4.1, 2.95) - 0.028 * (age - 57) + 0.045 * (height - np.where(male, 175.8, 162.6))
    fvc = np.round(np.clip(fvc + 0.55 * normal(n) - 0.15 * current, 0.5, 8.0), 2)
    ratio = np.clip(0.77 - 0.07 * current - 0.025 * previous - 0.002 * (age - 57) + 0.055 * normal(n), 0.3, 0.98)
    fev1 = np.round(np.minimum(fvc * ratio, fvc), 2)

    # --- latent disease states
    diabetic = uni(n) < _sigmoid(-3.2 + 0.05 * (age - 57) + 0.17 * (bmi - 27.0) + 0.4 * male + 0.9 * south_asian)
    hyper_p = _sigmoid(-1.5 + 0.05 * (age - 57) + 0.035 * (sbp - 137.0) + 0.08 * (bmi - 27.0))

    # --- blood
    z = normal((n, len(_BLOOD)))
    lipid = normal(n)  # shared lipid factor: cholesterol, LDL, ApoB
    blood: dict[int, np.ndarray] = {}
    sex_f = (~male).astype(np.float64)
    hb = np.where(male, 15.0, 13.45) + 0.95 * z[:, 2]
    blood[30000] = np.clip(6.8 + 0.9 * current + 0.05 * (bmi - 27) + 1.6 * z[:, 0], 1.0, 30.0)
    blood[30010] = np.clip(
        np.where(male, 4.75, 4.28) + 0.33 * z[:, 1] + 0.12 * (hb - np.where(male, 15.0, 13.45)), 2.5, 7.0
    )
    blood[30020] = np.clip(hb, 6.0, 20.0)
    blood[30030] = np.clip(2.93 * hb + 0.9 * z[:, 3], 20.0, 60.0)
    blood[30040] = np.clip(91.0 + 0.04 * (age - 57) + 1.5 * (alcohol == 1) + 4.3 * z[:, 4], 60.0, 130.0)
    blood[30080] = np.clip(250.0 + 22.0 * sex_f + 56.0 * z[:, 5], 20.0, 800.0)
    blood[30600] = np.clip(45.2 - 0.05 * (age - 57) + 2.6 * z[:, 6], 25.0, 60.0)
    blood[30610] = np.exp(np.log(80.0) + 0.03 * current + 0.25 * z[:, 7])
    blood[30620] = np.exp(np.log(np.where(male, 25.0, 18.0)) + 0.02 * (bmi - 27) + 0.45 * z[:, 8])
    blood[30630] = np.clip(1.45 + 0.18 * sex_f + 0.04 * (alcohol <= 2) + 0.25 * z[:, 9], 0.4, 2.6)
    chol = np.clip(5.55 + 0.25 * sex_f + 0.012 * (age - 57) + 1.0 * lipid + 0.35 * z[:, 15], 1.5, 15.0)
    blood[30690] = chol
    ldl = np.clip(0.62 * chol + 0.15 + 0.2 * z[:, 18], 0.3, 10.0)
    blood[30780] = ldl
    blood[30640] = np.clip(0.27 * ldl + 0.07 + 0.06 * z[:, 10], 0.3, 2.5)
    blood[30650] = np.exp(np.log(24.5) + 0.05 * male + 0.1 * (alcohol == 1) + 0.25 * z[:, 11])
    blood[30660] = np.exp(np.log(1.8) + 0.15 * male + 0.4 * z[:, 12])
    blood[30670] = np.clip(5.3 + 0.03 * (age - 57) + 0.3 * male + 1.3 * z[:, 13], 1.0, 30.0)
    blood[30680] = np.clip(2.38 + 0.09 * z[:, 14], 1.8, 3.2)
    creat = np.clip(np.where(male, 81.0, 63.0) + 0.25 * (age - 57) + 14.0 * z[:, 16], 20.0, 600.0)
    blood[30700] = creat
    blood[30710] = np.exp(np.log(1.25) + 0.09 * (bmi - 27) + 0.35 * current + 0.95 * z[:, 17])
    blood[30720] = np.clip(0.9 + 0.006 * (age - 57) + 0.0015 * (creat - 72) + 0.13 * z[:, 19], 0.3, 5.0)
    blood[30730] = np.exp(
        np.log(np.where(male, 34.0, 22.0)) + 0.2 * (alcohol == 1) + 0.015 * (bmi - 27) + 0.55 * z[:, 20]
    )
    glucose = np.where(diabetic, 7.6 + 2.6 * np.abs(z[:, 21]), 4.95 + 0.02 * (age - 57) + 0.55 * z[:, 21])
    blood[30740] = np.clip(glucose, 2.0, 35.0)
    hba1c = np.where(diabetic, 50.0 + 11.0 * np.abs(z[:, 22]), 35.0 + 0.1 * (age - 57) + 3.6 * z[:, 22])
    blood[30750] = np.clip(hba1c, 15.0, 150.0)
    blood[30760] = np.clip(1.42 + 0.33 * sex_f - 0.035 * (bmi - 27) + 0.08 * (alcohol <= 2) + 0.3 * z[:, 23], 0.3, 4.5)
    blood[30770] = np.clip(21.5 - 0.12 * (age - 57) + 5.6 * z[:, 24], 2.0, 80.0)
    blood[30790] = np.exp(np.log(20.0) + 1.2 * z[:, 25])
    premeno = ~male & (age < 51)
    oest = np.exp(np.log(np.where(premeno, 330.0, np.where(male, 90.0, 120.0))) + 0.6 * z[:, 26])
    blood[30800] = np.where(male & (uni(n) < 0.8) | (~male & ~premeno & (uni(n) < 0.6)), np.nan, oest)
    blood[30810] = np.clip(1.16 + 0.06 * sex_f + 0.16 * z[:, 27], 0.3, 3.0)
    blood[30820] = np.where(uni(n) < 0.92, np.nan, np.exp(np.log(20.0) + 0.8 * z[:, 28]))
    blood[30830] = np.exp(np.log(np.where(male, 40.0, 57.0)) + 0.01 * (age - 57) - 0.02 * (bmi - 27) + 0.35 * z[:, 29])
    blood[30840] = np.exp(np.log(np.where(male, 10.0, 8.0)) + 0.4 * z[:, 30])
    blood[30850] = np.clip(
        np.where(male, 11.9 - 0.2 * (bmi - 27) + 3.6 * z[:, 31], 1.1 + 0.5 * np.abs(z[:, 31])), 0.1, 50.0
    )
    blood[30860] = np.clip(72.5 + 4.0 * z[:, 32], 45.0, 100.0)
    blood[30870] = np.exp(np.log(1.45) + 0.2 * male + 0.035 * (bmi - 27) + 0.22 * diabetic + 0.48 * z[:, 33])
    blood[30880] = np.clip(np.where(male, 352.0, 262.0) + 7.0 * (bmi - 27) + 65.0 * z[:, 34], 50.0, 900.0)
    month_a = assess_d.astype("datetime64[M]").astype(np.int64) % 12 + 1
    vitd = 48.0 + 13.0 * np.cos(2.0 * np.pi * (month_a - 8.5) / 12.0) - 12.0 * other_ancestry + 19.0 * z[:, 35]
    blood[30890] = np.clip(vitd, 10.0, 250.0)

    # --- ICD-10 diagnoses and dates
    k_dx = len(_ICD10)
    risk = np.empty((n, k_dx))
    for k, (code, base, b_age, m_male) in enumerate(_ICD10):
        r = base * np.exp(b_age * (age - 57)) * np.where(male, m_male, 1.0)
        if code in ("I251", "I219", "I209"):
            r = r * np.where(current, 1.9, np.where(previous, 1.3, 1.0)) * np.where(diabetic, 1.8, 1.0)
        elif code in ("J449",):
            r = r * np.where(current, 5.0, np.where(previous, 2.3, 0.35))
        elif code == "C349":
            r = r * np.where(current, 10.0, np.where(previous, 3.5, 0.3))
        elif code == "C61":
            r = np.where(male, r, 0.0)
        elif code in ("M179", "K802"):
            r = r * np.exp(0.07 * (bmi - 27))
        elif code == "F329":
            r = r * np.exp(0.08 * townsend)
        elif code == "G309":
            r = r * 3.0**apoe4
        elif code == "E780":
            r = r * np.where(chol > 6.5, 1.8, 1.0)
        elif code == "N183":
            r = r * np.exp(0.02 * (creat - 72))
        elif code == "D649":
            r = r * np.where(hb < np.where(male, 13.0, 11.8), 3.0, 1.0)
        risk[:, k] = r
    risk[:, ICD10_CODES.index("I10")] = hyper_p
    risk[:, ICD10_CODES.index("E119")] = np.where(diabetic, 0.85, 0.0)
    risk[:, ICD10_CODES.index("E669")] = np.where(bmi >= 30.0, 0.25, 0.01)
    dx = uni((n, k_dx)) < np.clip(risk, 0.0, 0.95)
    adult = dob + 18 * 365
    dx_start = np.maximum(_HES_START, adult)
    dx_dates = dx_start[:, None] + np.floor(uni((n, k_dx)) * (_FOLLOW_UP_END - dx_start + 1)[:, None]).astype(np.int64)
    out["41270-0"], out["41280-0"] = _lists(dx, np.array(ICD10_CODES, dtype=object), dx_dates, pa.string())

    # --- OPCS-4 operations and dates
    k_op = len(_OPCS4)
    op = np.zeros((n, k_op), dtype=bool)
    op_dates = np.zeros((n, k_op), dtype=np.int64)
    u_op = uni((n, k_op))
    u_gap = uni((n, k_op))
    for k, (_code, base, b_age, m_male, link, p_link) in enumerate(_OPCS4):
        r = base * np.exp(b_age * (age - 57)) * np.where(male, m_male, 1.0)
        own = u_op[:, k] < np.clip(r, 0.0, 0.95)
        own_date = dx_start + np.floor(u_gap[:, k] * (_FOLLOW_UP_END - dx_start + 1)).astype(np.int64)
        if link is not None:
            j = ICD10_CODES.index(link)
            linked = dx[:, j] & (u_op[:, k] > 1.0 - p_link)
            link_date = np.minimum(dx_dates[:, j] + np.floor(u_gap[:, k] * 365).astype(np.int64), _FOLLOW_UP_END)
            op[:, k] = own | linked
            op_dates[:, k] = np.where(linked, link_date, own_date)
        else:
            op[:, k] = own
            op_dates[:, k] = own_date
    out["41272-0"], out["41282-0"] = _lists(op, np.array(OPCS4_CODES, dtype=object), op_dates, pa.string())

    # --- assemble in dictionary order
    cols: dict[str, pa.Array | np.ndarray] = {PARTICIPANT_COLUMN: out[PARTICIPANT_COLUMN]}
    cols["31-0.0"] = male.astype(np.int32)
    cols["34-0.0"] = yob.astype(np.int32)
    cols["52-0.0"] = mob.astype(np.int32)
    cols["53-0.0"] = pa.array(assess.astype(np.int32), pa.date32())
    cols["54-0.0"] = _CENTRE_CODE[centre]
    cols["21022-0.0"] = age.astype(np.int32)
    cols["189-0.0"] = townsend
    cols["20074-0.0"] = east.astype(np.int32)
    cols["20075-0.0"] = north.astype(np.int32)
    cols["21000-0.0"] = ethnic
    cols["6138-0"] = out["6138-0"]
    cols["6142-0"] = out["6142-0"]
    cols["20116-0.0"] = smoking.astype(np.int32)
    cols["1558-0.0"] = alcohol.astype(np.int32)
    cols["1160-0.0"] = sleep.astype(np.int32)
    cols["50-0.0"] = height
    cols["21002-0.0"] = weight
    cols["21001-0.0"] = bmi
    cols["48-0.0"] = waist
    cols["49-0.0"] = hip
    cols["23099-0.0"] = fat
    cols["4080-0.0"] = sbp.astype(np.int32)
    cols["4079-0.0"] = dbp.astype(np.int32)
    cols["102-0.0"] = pulse.astype(np.int32)
    cols["46-0.0"] = grip_l.astype(np.int32)
    cols["47-0.0"] = grip_r.astype(np.int32)
    cols["3062-0.0"] = fvc
    cols["3063-0.0"] = fev1
    for fid, _name, _units, prec, _cat in _BLOOD:
        v = np.round(blood[fid], prec)
        cols[f"{fid}-0.0"] = pa.array(v, pa.float64(), from_pandas=True) if np.isnan(v).any() else v
    for key in ("41270-0", "41280-0", "41272-0", "41282-0"):
        cols[key] = out[key]
    for k in range(len(SNPS)):
        cols[f"{GENOTYPE_FIELD_MIN + 1 + k}-0.0"] = geno[:, k]
    return cols


_DICT = cohort_dictionary()
_AGE_FIELD = _DICT.field(21022)
_BMI_FIELD = _DICT.field(21001)
_SCHEMA: pa.Schema | None = None


def cohort_schema() -> pa.Schema:
    """The Arrow schema of the synthetic cohort."""
    global _SCHEMA
    if _SCHEMA is None:
        _SCHEMA = _block_table(0, 0, np.array([EID_MIN], dtype=np.int64)).schema
    return _SCHEMA


def _block_table(seed: int, block: int, eid: np.ndarray) -> pa.Table:
    cols = _block(seed, block, eid)
    expected = [PARTICIPANT_COLUMN, *_DICT.columns()]
    if list(cols) != expected:  # a programming error, caught by the tests
        raise AssertionError(f"synth columns out of dictionary order: {set(cols) ^ set(expected)}")
    return pa.table({k: (v if isinstance(v, pa.Array | pa.ChunkedArray) else pa.array(v)) for k, v in cols.items()})


def _eids(participants: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(0,)))
    picked = rng.choice(EID_MAX - EID_MIN + 1, size=participants, replace=False)
    picked.sort()
    return picked.astype(np.int64) + EID_MIN


def _check_args(participants: int, seed: int) -> None:
    if not isinstance(participants, int | np.integer) or participants < 1:
        raise ValueError(f"participants must be a positive integer, not {participants!r}")
    if participants > EID_MAX - EID_MIN + 1:
        raise ValueError(f"participants must be at most {EID_MAX - EID_MIN + 1:,} (7-digit eids)")
    if not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, not {seed!r}")


def iter_blocks(participants: int, seed: int, chunk_rows: int = DEFAULT_CHUNK_ROWS):
    """Yield Arrow tables of about ``chunk_rows`` participants (whole blocks), in eid order."""
    _check_args(participants, seed)
    eids = _eids(participants, seed)
    per_chunk = max(1, -(-int(chunk_rows) // BLOCK_ROWS))
    n_blocks = -(-participants // BLOCK_ROWS)
    for first in range(0, n_blocks, per_chunk):
        tables = []
        for b in range(first, min(first + per_chunk, n_blocks)):
            tables.append(_block_table(seed, b, eids[b * BLOCK_ROWS : (b + 1) * BLOCK_ROWS]))
        yield pa.concat_tables(tables).combine_chunks() if len(tables) > 1 else tables[0]


def synthesise_table(participants: int, seed: int = 2026) -> tuple[pa.Table, Dictionary]:
    """The synthetic cohort in memory (same generator and output as ``synthesise``)."""
    tables = list(iter_blocks(participants, seed, chunk_rows=max(participants, BLOCK_ROWS)))
    table = pa.concat_tables(tables) if len(tables) > 1 else tables[0]
    return table, _DICT


@dataclass(frozen=True)
class SynthReport:
    participants: int
    seed: int
    columns: int
    fields: int
    fields_by_role: dict[str, int]
    seconds: float
    parquet: Path
    dictionary: Path
    parquet_bytes: int
    generator: str = GENERATOR_VERSION

    def to_json(self) -> dict[str, object]:
        d = asdict(self)
        d["parquet"] = str(self.parquet)
        d["dictionary"] = str(self.dictionary)
        return d


def read_manifest(out_dir: str | os.PathLike[str]) -> dict[str, object] | None:
    """The manifest of a synthesised cohort folder, or None."""
    p = Path(out_dir) / MANIFEST
    try:
        return json.loads(p.read_text())
    except (OSError, ValueError):
        return None


def _write_json_atomic(path: Path, payload: dict[str, object]) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(payload, fh, indent=2, sort_keys=True, default=str)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def synthesise(
    participants: int,
    seed: int,
    out_dir: str | os.PathLike[str],
    progress: ProgressFn | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
) -> SynthReport:
    """Stream the cohort to ``out_dir/cohort.parquet`` and write ``out_dir/dictionary.tsv`` (atomically).

    ``progress(done, total)`` is called after each chunk. Memory stays bounded by one chunk.
    """
    _check_args(participants, seed)
    started = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    # the manifest is written last: until then the folder does not claim to hold this cohort
    (out / MANIFEST).unlink(missing_ok=True)
    target = out / COHORT_FILE
    fd, tmp_name = tempfile.mkstemp(prefix=".cohort.", suffix=".parquet.tmp", dir=out)
    os.close(fd)
    tmp = Path(tmp_name)
    done = 0
    try:
        writer: pq.ParquetWriter | None = None
        try:
            for table in iter_blocks(participants, seed, chunk_rows):
                if writer is None:
                    writer = pq.ParquetWriter(tmp, table.schema, compression="zstd", compression_level=3)
                writer.write_table(table, row_group_size=max(chunk_rows, BLOCK_ROWS))
                done += table.num_rows
                if progress is not None:
                    progress(done, participants)
        finally:
            if writer is not None:
                writer.close()
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    dict_path = write_dictionary(_DICT, out / DICTIONARY_FILE)
    by_role = {r.value: len(_DICT.by_role(r)) for r in Role}
    report = SynthReport(
        participants=participants,
        seed=seed,
        columns=1 + len(_DICT.columns()),
        fields=len(_DICT),
        fields_by_role=by_role,
        seconds=round(time.perf_counter() - started, 3),
        parquet=target,
        dictionary=dict_path,
        parquet_bytes=target.stat().st_size,
    )
    _write_json_atomic(
        out / MANIFEST,
        {"generator": GENERATOR_VERSION, "participants": participants, "seed": seed, "columns": report.columns},
    )
    return report
