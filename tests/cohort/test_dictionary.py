"""The data dictionary: round trip, showcase import, hierarchy specs and every error case."""

from __future__ import annotations

import pyarrow as pa
import pytest

from biowarden.cohort.dictionary import (
    ALL_COLUMNS,
    SHOWCASE_COLUMNS,
    Dictionary,
    DictionaryError,
    HierarchySpec,
    arrow_type_fits,
    parse_hierarchy_spec,
    read_dictionary,
    read_showcase,
    write_dictionary,
)
from biowarden.cohort.fields import Field, Role, ValueType
from biowarden.cohort.synth import cohort_dictionary


def _tsv(path, header, rows):
    path.write_text("\n".join(["\t".join(header), *("\t".join(r) for r in rows)]) + "\n")
    return path


def _row(**kw):
    base = dict.fromkeys(ALL_COLUMNS, "")
    base.update(kw)
    return [base[c] for c in ALL_COLUMNS]


def test_round_trip_of_the_cohort_dictionary(tmp_path):
    d = cohort_dictionary()
    p = write_dictionary(d, tmp_path / "d.tsv")
    back = read_dictionary(p)
    assert back == d
    assert [f.hierarchy for f in back] == [f.hierarchy for f in d]
    assert back.field(21001).derived_from == (21002, 50)
    assert back.field(41280).paired_with == 41270
    # second write is byte-identical
    p2 = write_dictionary(back, tmp_path / "d2.tsv")
    assert p.read_bytes() == p2.read_bytes()
    assert p.read_text().splitlines()[0].split("\t") == list(ALL_COLUMNS)


def test_lookups_and_roles():
    d = cohort_dictionary()
    assert len(d.columns()) >= 100
    assert d.for_column("50-0.0").name == "Standing height"
    assert d.for_column("41270-0").multiple
    assert d.for_column("41280-0").listed
    assert d.for_column("eid").role is Role.IDENTIFIER
    assert d.role_of("189-0.0") is Role.QUASI
    assert "53-0.0" in d.quasi_columns()
    assert "6138-0" in d.quasi_columns() and "6138-0" not in d.quasi_columns(scalar_only=True)
    assert {f.field_id for f in d.by_role("genetic")} == set(range(900001, 900041))
    assert set(d.list_columns()) == {"6138-0", "6142-0", "41270-0", "41280-0", "41272-0", "41282-0"}
    with pytest.raises(DictionaryError, match="unknown field id 99"):
        d.for_column("99-0.0")
    with pytest.raises(DictionaryError, match="no instance 1"):
        d.for_column("50-1.0")
    with pytest.raises(DictionaryError, match="not a dictionary column"):
        d.for_column("height")
    with pytest.raises(DictionaryError, match="unknown field id"):
        d.field(12345)
    sub = d.subset([21001])
    assert {f.field_id for f in sub} == {21001, 21002, 50}
    assert {f.field_id for f in d.subset([41280])} == {41280, 41270}


def test_hierarchy_specs():
    assert parse_hierarchy_spec("date:day,month,quarter,year,5y,10y").params == (
        "day",
        "month",
        "quarter",
        "year",
        "5y",
        "10y",
    )
    assert parse_hierarchy_spec("interval:5,10,20") == HierarchySpec("interval", (5.0, 10.0, 20.0))
    assert str(parse_hierarchy_spec("interval:0.5,1,2")) == "interval:0.5,1,2"
    assert parse_hierarchy_spec("coding:icd10-chapter", ValueType.CATEGORICAL_MULTIPLE).params == ("icd10-chapter",)
    assert parse_hierarchy_spec("file:age_hier").kind == "file"
    for bad, match in [
        ("month,year", "KIND:PARAMS"),
        ("weekly:1", "unknown kind"),
        ("date:", "no parameters"),
        ("date:year,month", "in the order"),
        ("date:month,month", "in the order"),
        ("date:fortnight", "unknown date level"),
        ("interval:10,5", "increase"),
        ("interval:0,5", "positive"),
        ("interval:a,5", "not a number"),
        ("file:../etc/passwd", "not a valid file name"),
        ("coding:has space", "not a valid coding name"),
    ]:
        with pytest.raises(DictionaryError, match=match):
            parse_hierarchy_spec(bad)
    with pytest.raises(DictionaryError, match="does not fit value type 'Continuous'"):
        parse_hierarchy_spec("date:month,year", ValueType.CONTINUOUS)
    with pytest.raises(DictionaryError, match="does not fit value type 'Date'"):
        parse_hierarchy_spec("interval:5,10", ValueType.DATE)


@pytest.mark.parametrize(
    ("row", "match"),
    [
        (dict(FieldID="50", Field="Height", ValueType="Real", Role="measure"), "line 2.*bad value type 'Real'"),
        (dict(FieldID="50", Field="Height", ValueType="Continuous", Role="secret"), "line 2.*bad role 'secret'"),
        (dict(FieldID="x", Field="Height", ValueType="Continuous", Role="measure"), "line 2.*FieldID 'x'"),
        (
            dict(FieldID="50", Field="Height", ValueType="Text", Role="genetic"),
            "field 50.*role 'genetic' does not fit value type 'Text'",
        ),
        (
            dict(FieldID="50", Field="Height", ValueType="Continuous", Role="quasi", Hierarchy="date:year"),
            "line 2.*field 50.*does not fit value type 'Continuous'",
        ),
        (
            dict(FieldID="31", Field="Sex", ValueType="Categorical single", Role="quasi", Precision="1"),
            "line 2.*field 31.*precision given for non-numeric",
        ),
        (
            dict(FieldID="34", Field="Year", ValueType="Integer", Role="quasi", Precision="2"),
            "Integer field has precision 0",
        ),
        (
            dict(FieldID="900001", Field="rs1", ValueType="Integer", Role="genetic", Hierarchy="interval:1,2"),
            "takes no hierarchy",
        ),
        (
            dict(FieldID="50", Field="Height", ValueType="Continuous", Role="measure", Precision="one"),
            "Precision 'one' is not an integer",
        ),
        (dict(FieldID="50", Field="", ValueType="Continuous", Role="measure"), "empty field name"),
        (
            dict(FieldID="21001", Field="BMI", ValueType="Continuous", Role="measure", DerivedFrom="21002"),
            "derived from unknown field 21002",
        ),
        (
            dict(FieldID="41280", Field="Dates", ValueType="Date", Role="sensitive", PairedWith="41270"),
            "PairedWith 41270",
        ),
    ],
)
def test_row_errors_name_line_and_field(tmp_path, row, match):
    p = _tsv(tmp_path / "d.tsv", ALL_COLUMNS, [_row(**row)])
    with pytest.raises(DictionaryError, match=match):
        read_dictionary(p)


def test_file_level_errors(tmp_path):
    ok = _row(FieldID="50", Field="Height", ValueType="Continuous", Role="measure")
    with pytest.raises(DictionaryError, match=r"line 1: unknown column\(s\) 'Colour'"):
        read_dictionary(_tsv(tmp_path / "a.tsv", [*ALL_COLUMNS, "Colour"], [[*ok, "red"]]))
    with pytest.raises(DictionaryError, match=r"missing required column\(s\) ValueType"):
        read_dictionary(_tsv(tmp_path / "b.tsv", ["FieldID", "Field", "Role"], [["50", "Height", "measure"]]))
    with pytest.raises(DictionaryError, match="plain showcase file"):
        read_dictionary(_tsv(tmp_path / "c.tsv", SHOWCASE_COLUMNS, [ok[: len(SHOWCASE_COLUMNS)]]))
    with pytest.raises(DictionaryError, match=r"line 3: duplicate field id 50.*first on line 2"):
        read_dictionary(_tsv(tmp_path / "d.tsv", ALL_COLUMNS, [ok, ok]))
    with pytest.raises(DictionaryError, match="empty dictionary"):
        read_dictionary(_tsv(tmp_path / "e.tsv", [""], []))
    with pytest.raises(DictionaryError, match="no such dictionary file"):
        read_dictionary(tmp_path / "missing.tsv")
    with pytest.raises(DictionaryError, match="line 2: 24 cells"):
        read_dictionary(_tsv(tmp_path / "f.tsv", ALL_COLUMNS, [[*ok, "x"]]))
    with pytest.raises(DictionaryError, match="duplicate field id"):
        Dictionary([Field(1, "a", ValueType.INTEGER, Role.MEASURE), Field(1, "b", ValueType.INTEGER, Role.MEASURE)])


SHOWCASE_SAMPLE = [
    # Path, Category, FieldID, Field, Participants, Items, Stability, ValueType, Units, ItemType, Strata,
    # Sexed, Instances, Array, Coding, Notes, Link
    ["Population characteristics > Baseline", "100094", "31", "Sex", "502411", "502411", "Complete",
     "Categorical single", "", "Data", "Primary", "Unisex", "1", "1", "9", "Participants' sex", "http://x/31"],
    ["Population characteristics > Baseline", "100094", "34", "Year of birth", "502411", "502411", "Complete",
     "Integer", "years", "Data", "Primary", "Unisex", "1", "1", "", "", "http://x/34"],
    ["Assessment centre > Physical measures", "100010", "50", "Standing height", "499000", "540000", "Complete",
     "Continuous", "cm", "Data", "Primary", "Unisex", "4", "1", "", "", "http://x/50"],
    ["Health outcomes > Summary", "2002", "41270", "Diagnoses - ICD10", "440000", "5000000", "Accruing",
     "Categorical multiple", "", "Data", "Primary", "Unisex", "1", "259", "19", "", ""],
    ["Health outcomes > Summary", "2002", "41280", "Date of first in-patient diagnosis - ICD10", "440000",
     "5000000", "Accruing", "Date", "", "Data", "Auxiliary", "Unisex", "1", "259", "", "", ""],
    ["Additional exposures > Local environment", "100096", "24003", "Nitrogen dioxide air pollution; 2010",
     "480000", "480000", "Complete", "Continuous", "micro-g/m3", "Data", "Primary", "Unisex", "1", "1", "", "", ""],
    ["Verbal interview", "100074", "20013", "Method of recording time when non-cancer illness first diagnosed",
     "1", "1", "Complete", "Text", "", "Data", "Supporting", "Unisex", "4", "34", "", "", ""],
    ["Hospital inpatient", "2000", "40021", "Inpatient record origin", "1", "1", "Accruing", "Date", "",
     "Data", "Primary", "Unisex", "1", "1", "", "", ""],
]  # fmt: skip


def test_showcase_import_assigns_roles_and_reports_defaults(tmp_path):
    p = _tsv(tmp_path / "Data_Dictionary_Showcase.tsv", SHOWCASE_COLUMNS, SHOWCASE_SAMPLE)
    d = read_showcase(p)
    assert d.field(31).role is Role.QUASI and d.field(34).hierarchy == "interval:5,10,20"
    assert d.field(50).role is Role.MEASURE and d.field(50).instances == 4
    assert d.field_columns(50) == ["50-0.0", "50-1.0", "50-2.0", "50-3.0"]
    assert d.field(41270).role is Role.SENSITIVE and d.for_column("41270-0").multiple
    assert d.field(41280).paired_with == 41270
    assert d.field(20013).role is Role.IDENTIFIER  # free text is never released
    assert d.field(40021).role is Role.QUASI  # dates of events
    assert set(d.defaulted) == {50, 24003, 20013, 40021}
    assert "not in the known table" in d.defaulted[24003]
    assert d.field(31).extra["Link"] == "http://x/31"
    # write and read back as an annotated dictionary: same fields, passthrough columns kept
    back = read_dictionary(write_dictionary(d, tmp_path / "annotated.tsv"))
    assert back == d and back.field(50).extra["Stability"] == "Complete"
    with pytest.raises(DictionaryError, match=r"line 1: missing required column\(s\) ValueType"):
        read_showcase(_tsv(tmp_path / "x.tsv", ["FieldID", "Field"], [["31", "Sex"]]))
    with pytest.raises(DictionaryError, match=r"line 2.*bad value type 'Categorical'"):
        read_showcase(_tsv(tmp_path / "y.tsv", ["FieldID", "Field", "ValueType"], [["31", "Sex", "Categorical"]]))


def test_arrow_type_fits():
    d = cohort_dictionary()
    assert arrow_type_fits(d.field(50), pa.float64())
    assert not arrow_type_fits(d.field(50), pa.string())
    assert arrow_type_fits(d.field(41270), pa.list_(pa.string()))
    assert not arrow_type_fits(d.field(41270), pa.string())
    assert arrow_type_fits(d.field(41280), pa.list_(pa.date32()))
    assert not arrow_type_fits(d.field(53), pa.list_(pa.date32()))
    assert arrow_type_fits(d.field(53), pa.date32())
    assert not arrow_type_fits(d.field(34), pa.float64())
