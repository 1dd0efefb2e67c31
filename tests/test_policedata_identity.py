"""One identity per agency and nothing read twice, skipped or hung on: NFC names, symlinked and
unreadable folders, month files present twice, implausible months, special files, and agency
patterns that would backtrack for hours under Python's `re`."""

from __future__ import annotations

import os
import time
import unicodedata
from pathlib import Path

import pytest

from policedata import checks
from policedata.csv_source import load_csv_source
from policedata.errors import DataError
from policedata.loader import find_street_files, load_street_folder
from policedata.manifest import read_manifest
from policedata.partition import write_agency_folders
from policedata.schema import NO_SUSPECT, STREET_COLUMNS
from policedata.synthetic import SyntheticSpec

HEADER = ",".join(STREET_COLUMNS)
NFC = unicodedata.normalize("NFC", "Café Police")
NFD = unicodedata.normalize("NFD", "Café Police")


def _row(crime_id: str, month: str, agency: str = "Ashmoor Police", crime: str = "Burglary") -> str:
    outcome = "" if crime == "Anti-social behaviour" else NO_SUSPECT
    return f"{crime_id},{month},{agency},{agency},-1.5,52.1,On or near Mill Lane,E01000001,Ashmoor 001A,{crime},{outcome},"


def _street(folder: Path, month: str, slug: str, rows: list[str]) -> Path:
    path = folder / month / f"{month}-{slug}-street.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join([HEADER, *rows]) + "\n", encoding="utf-8")
    return path


def _error(path: Path, **kwargs) -> str:
    with pytest.raises(DataError) as err:
        load_street_folder(path, **kwargs)
    message = str(err.value)
    assert "\n" not in message
    return message


# ---------------------------------------------------------------- one identity per agency


def test_nfc_and_nfd_names_are_one_agency_also_within_one_agencys_files(tmp_path):
    assert NFC != NFD
    _street(tmp_path, "2023-01", "cafe", [_row("c1", "2023-01", NFC), _row("c2", "2023-01", NFD)])
    _street(tmp_path, "2023-02", "cafe", [_row("c3", "2023-02", NFD)])
    records, report = load_street_folder(tmp_path)
    assert report.per_agency == {NFC: 3}
    assert set(records["agency"]) == {NFC}
    # Partitioned, it is one folder; reloaded, still one agency.
    written = write_agency_folders(records, tmp_path / "out")
    assert [(a["name"], a["records"]) for a in written] == [(NFC, 3)]
    _, again = load_street_folder(tmp_path / "out")
    assert again.per_agency == {NFC: 3}


def test_nfc_with_an_agency_pattern(tmp_path):
    _street(tmp_path, "2023-01", "cafe", [_row("c1", "2023-01", NFC), _row("c2", "2023-01", NFD)])
    _, report = load_street_folder(tmp_path, agency_pattern="^(Café) Police$")  # the pattern in NFC matches both forms
    assert report.per_agency == {"Café": 2}


def test_csv_source_nfc_names_are_one_agency(tmp_path):
    path = tmp_path / "incidents.csv"
    path.write_text(f"Agency,Month,Type\n{NFC},2023-01,Burglary\n{NFD},2023-01,Drugs\n{NFD},2023-02,Drugs\n", encoding="utf-8")
    records, report = load_csv_source(path, {"agency": "Agency", "month": "Month", "category": "Type"})
    assert report.per_agency == {NFC: 3} and set(records["agency"]) == {NFC}
    # A value map written in the other form still applies.
    _, mapped = load_csv_source(path, {"agency": "Agency", "month": "Month", "category": "Type"}, {"agency": {NFD: "Cafe"}})
    assert mapped.per_agency == {"Cafe": 3}


def test_manifest_names_come_back_in_nfc(tmp_path):
    (tmp_path / "cafe").mkdir()
    (tmp_path / "manifest.json").write_text(
        '{"months": ["2023-01"], "agencies": [{"name": "' + NFD.replace("\u0301", "\\u0301") + '", "slug": "cafe", "folder": "cafe"}]}',
        encoding="utf-8",
    )
    assert read_manifest(tmp_path)["agencies"][0]["name"] == NFC


def test_a_symlinked_agency_folder_is_followed(tmp_path):
    data, elsewhere = tmp_path / "data", tmp_path / "elsewhere"
    _street(data, "2023-01", "ashmoor", [_row("a1", "2023-01")])
    _street(elsewhere / "goldby", "2023-01", "goldby", [_row("g1", "2023-01", "Goldby Police"), _row("g2", "2023-01", "Goldby Police")])
    (data / "goldby").symlink_to(elsewhere / "goldby", target_is_directory=True)
    _, report = load_street_folder(data)
    assert report.per_agency == {"Ashmoor Police": 1, "Goldby Police": 2}
    # A symlinked street file is followed too.
    (data / "2023-01" / "2023-01-linked-street.csv").symlink_to(_street(elsewhere, "2023-02", "linked", [_row("l1", "2023-02", "Linked Police")]))
    _, report = load_street_folder(data)
    assert report.per_agency["Linked Police"] == 1


def test_a_symlink_loop_or_a_folder_reached_twice_is_refused(tmp_path):
    _street(tmp_path, "2023-01", "ashmoor", [_row("a1", "2023-01")])
    (tmp_path / "2023-01" / "back").symlink_to(tmp_path, target_is_directory=True)
    message = _error(tmp_path)
    assert "the same folder as" in message and "read twice" in message
    (tmp_path / "2023-01" / "back").unlink()
    (tmp_path / "again").symlink_to(tmp_path / "2023-01", target_is_directory=True)
    assert "the same folder as" in _error(tmp_path)


def test_a_broken_symlink_named_like_a_street_file_is_refused(tmp_path):
    _street(tmp_path, "2023-01", "ashmoor", [_row("a1", "2023-01")])
    (tmp_path / "2023-01" / "2023-01-gone-street.csv").symlink_to(tmp_path / "nowhere.csv")
    assert "2023-01-gone-street.csv: no such file (a broken symlink?)" in _error(tmp_path)


def test_an_unreadable_folder_is_an_error_naming_it(tmp_path, monkeypatch):
    """Root reads mode-000 folders, so the refusal of the OS is simulated for root; as another
    user the real chmod 000 is used."""
    _street(tmp_path, "2023-01", "ashmoor", [_row("a1", "2023-01")])
    locked = _street(tmp_path, "2023-02", "ashmoor", [_row("a2", "2023-02")]).parent
    if os.geteuid() == 0:
        real = os.scandir

        def scandir(path="."):
            if isinstance(path, (str, os.PathLike)) and Path(path) == locked:
                raise PermissionError(13, "Permission denied", str(path))
            return real(path)

        monkeypatch.setattr(os, "scandir", scandir)
        assert _error(tmp_path) == f"{locked}: cannot read this folder (Permission denied); its records would be missing"
    else:
        locked.chmod(0)
        try:
            assert _error(tmp_path) == f"{locked}: cannot read this folder (Permission denied); its records would be missing"
        finally:
            locked.chmod(0o755)


def test_an_unreadable_file_is_an_error_naming_it(tmp_path, monkeypatch):
    """As root, os.access says no (the check before opening) and, separately, open() fails (the
    read itself): both name the file."""
    file = _street(tmp_path, "2023-01", "ashmoor", [_row("a1", "2023-01")])
    if os.geteuid() != 0:
        file.chmod(0)
        try:
            assert _error(tmp_path) == f"{file}: cannot be read (permission denied)"
        finally:
            file.chmod(0o644)
        return
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: False if Path(p) == file else real_access(p, mode, **kw))
    assert _error(tmp_path) == f"{file}: cannot be read (permission denied)"
    monkeypatch.setattr(os, "access", real_access)

    def refuse(path, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(checks, "open", refuse, raising=False)  # checks reads the file first
    assert _error(tmp_path) == f"{file}: cannot be read (Permission denied)"


def test_a_month_file_present_twice_is_refused(tmp_path):
    """Rows without a Crime ID (anti-social behaviour) would otherwise be counted twice."""
    rows = [_row("", "2023-01", crime="Anti-social behaviour"), _row("", "2023-01", crime="Anti-social behaviour")]
    first = _street(tmp_path, "2023-01", "ashmoor", rows)
    copy = _street(tmp_path / "download-2", "2023-01", "ashmoor", rows)  # the same name in another place
    message = _error(tmp_path)
    assert message.startswith(f"{copy}: month file '2023-01-ashmoor-street.csv' is present twice (also {first})")
    copy.unlink()
    renamed = _street(tmp_path, "2023-01", "ashmoor-copy", rows)  # the same bytes under another name
    assert _error(tmp_path) == f"{first}: the same bytes as {renamed}; a month file present twice would count its records twice (remove one copy)"
    renamed.write_text(renamed.read_text(encoding="utf-8").replace(",2023-01,", ",2023-02,").replace("2023-02,", "2023-01,", 1), encoding="utf-8")
    _, report = load_street_folder(tmp_path)  # different content: both read
    assert report.rows == 4


def test_header_only_files_may_be_alike(tmp_path):
    _street(tmp_path, "2023-01", "ashmoor", [_row("a1", "2023-01"), _row("a2", "2023-01")])
    _street(tmp_path, "2023-02", "ashmoor", [])
    _street(tmp_path, "2023-03", "ashmoor", [])
    assert load_street_folder(tmp_path)[1].rows == 2


@pytest.mark.parametrize("month, why", [
    ("2999-01", "is after the current month"),
    ("0000-01", "is before 2000-01"),
    ("1999-12", "is before 2000-01"),
])
def test_implausible_months_are_refused_with_the_row(tmp_path, month, why):
    file = _street(tmp_path, "2023-01", "ashmoor", [_row("a1", "2023-01"), _row("a2", month)])
    assert _error(tmp_path).startswith(f"{file}: line 3: Month '{month}' {why}")


def test_the_current_month_and_2000_are_plausible():
    latest = checks.latest_month()
    assert checks.implausible_month(latest) is None and checks.implausible_month("2000-01") is None
    assert checks.implausible_month("2024-05", latest="2024-04") is not None


def test_csv_source_refuses_implausible_months(tmp_path):
    path = tmp_path / "incidents.csv"
    path.write_text("Agency,Month,Type\nA,2023-01,Burglary\nA,2999-04,Drugs\n", encoding="utf-8")
    with pytest.raises(DataError) as err:
        load_csv_source(path, {"agency": "Agency", "month": "Month", "category": "Type"})
    assert str(err.value).startswith(f"{path}: row 3, column 'Month' (data.columns.month): month 2999-04 is after the current month")


def test_synthetic_spec_refuses_future_months():
    with pytest.raises(DataError, match="start_month='2023-01', months=240: month 2042-12 is after the current month"):
        SyntheticSpec(start_month="2023-01", months=240).validate()
    with pytest.raises(DataError, match="month 1990-01 is before 2000-01"):
        SyntheticSpec(start_month="1990-01", months=24).validate()


# ---------------------------------------------------------------- special files, refused before reading


def test_a_fifo_named_like_a_street_file_is_refused_without_blocking(tmp_path):
    _street(tmp_path, "2023-01", "ashmoor", [_row("a1", "2023-01")])
    fifo = tmp_path / "2023-01" / "2023-01-pipe-street.csv"
    os.mkfifo(fifo)
    started = time.monotonic()
    assert _error(tmp_path) == f"{fifo}: is a FIFO (named pipe), not a regular file; Peel reads only regular files"
    assert time.monotonic() - started < 5


def test_dev_zero_named_like_a_street_file_is_refused(tmp_path):
    _street(tmp_path, "2023-01", "ashmoor", [_row("a1", "2023-01")])
    link = tmp_path / "2023-01" / "2023-01-zero-street.csv"
    link.symlink_to("/dev/zero")
    assert _error(tmp_path) == f"{link}: is a character device, not a regular file; Peel reads only regular files"


def test_special_files_are_refused_before_any_file_is_read(tmp_path, monkeypatch):
    """The check runs on every file first: a good file sorted before the FIFO is not read."""
    _street(tmp_path, "2023-01", "ashmoor", [_row("a1", "2023-01")])
    os.mkfifo(tmp_path / "2023-01" / "2023-01-zz-street.csv")
    read = []
    real = checks.check_file_lines
    monkeypatch.setattr("policedata.loader.check_file_lines", lambda p, *a: read.append(p) or real(p, *a))
    _error(tmp_path)
    assert read == []


def test_a_street_file_over_the_size_bound_is_refused(tmp_path, monkeypatch):
    file = _street(tmp_path, "2023-01", "ashmoor", [_row("a1", "2023-01")])
    monkeypatch.setattr(checks.check_regular_file, "__defaults__", (100,))
    size = file.stat().st_size
    assert _error(tmp_path) == f"{file}: {size:,} bytes; a file may be at most 100 bytes (split it, e.g. by month)"


def test_areas_and_csv_source_refuse_special_files(tmp_path):
    from policedata.loader import load_areas

    os.mkfifo(tmp_path / "areas.csv")
    with pytest.raises(DataError, match="not a file"):
        load_areas(tmp_path / "areas.csv")
    os.mkfifo(tmp_path / "incidents.csv")
    with pytest.raises(DataError, match="not a file"):
        load_csv_source(tmp_path / "incidents.csv", {"agency": "A", "month": "M", "category": "C"})


def test_a_fifo_manifest_is_refused(tmp_path):
    os.mkfifo(tmp_path / "manifest.json")
    with pytest.raises(DataError, match="manifest.json: not a regular file"):
        read_manifest(tmp_path)


# ---------------------------------------------------------------- agency patterns cannot hang


def test_a_backtracking_pattern_finishes_at_once(tmp_path):
    """'(a+)+$' on 40 letters and a mismatch takes Python's `re` hours; RE2 is linear."""
    agency = "a" * 5000 + "!"
    _street(tmp_path, "2023-01", "x", [_row("a1", "2023-01", agency), _row("a2", "2023-01", agency)])
    started = time.monotonic()
    message = _error(tmp_path, agency_pattern="(a+)+$", unmatched="error")
    assert time.monotonic() - started < 5
    assert "does not match the agency pattern '(a+)+$'" in message
    assert len(message) < 300  # the 5,000-letter value is shortened
    _, report = load_street_folder(tmp_path, agency_pattern="^(a)a*!$")
    assert report.per_agency == {"a": 2}


def test_patterns_re2_cannot_run_are_refused_at_validation():
    from experiments.config import ConfigError, validate

    with pytest.raises(ConfigError, match=r"data.agency.pattern: is not supported by RE2.*look-around"):
        validate({"data": {"agency": {"pattern": "(?=x)(.*)"}}}, "c.yaml")
    with pytest.raises(ConfigError, match=r"data.agency.pattern: is not supported by RE2"):
        validate({"data": {"agency": {"pattern": r"(a)\1"}}}, "c.yaml")
    validate({"data": {"agency": {"pattern": "(a+)+$"}}}, "c.yaml")  # valid: RE2 runs it in linear time


def test_find_street_files_sorted_and_ignores_other_files(tmp_path):
    b = _street(tmp_path, "2023-02", "b", [])
    a = _street(tmp_path, "2023-01", "a", [])
    (tmp_path / "2023-01" / "2023-01-a-outcomes.csv").write_text("x", encoding="utf-8")
    assert find_street_files(tmp_path) == [a, b]


# ---------------------------------------------------------------- the config file itself


def test_config_that_is_not_a_regular_file_is_refused(tmp_path):
    from experiments.config import MAX_CONFIG_BYTES, ConfigError, load_config

    with pytest.raises(ConfigError, match=r"^/dev/zero: cannot read config \(not a regular file\)$"):
        load_config("/dev/zero")
    os.mkfifo(tmp_path / "fifo.yaml")
    with pytest.raises(ConfigError, match="not a regular file"):
        load_config(tmp_path / "fifo.yaml")
    big = tmp_path / "big.yaml"
    big.write_text("# " + "x" * MAX_CONFIG_BYTES + "\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="larger than 1,000,000 bytes"):
        load_config(big)


def test_manifest_months_must_be_plausible(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "manifest.json").write_text(
        '{"months": ["0000-01", "2023-02"], "agencies": [{"name": "A Police", "slug": "a", "folder": "a"}]}', encoding="utf-8"
    )
    with pytest.raises(DataError, match=r"manifest.json: months: 0000-01 is before 2000-01"):
        read_manifest(tmp_path)
    assert read_manifest(tmp_path, months=False)["agencies"][0]["name"] == "A Police"  # a deployment reads no months


def test_a_very_long_agency_name_gets_a_short_distinct_slug(tmp_path):
    from policedata.partition import MAX_SLUG, slugify

    long_a, long_b = "Ash" * 100 + " Police", "Ash" * 100 + "x Police"
    assert len(slugify(long_a)) <= MAX_SLUG and slugify(long_a) != slugify(long_b)
    assert slugify("Ashmoor Police") == "ashmoor"  # short names unchanged
    _street(tmp_path / "in", "2023-01", "x", [_row("a1", "2023-01", long_a), _row("b1", "2023-01", long_b)])
    records, _ = load_street_folder(tmp_path / "in")
    written = write_agency_folders(records, tmp_path / "out")
    assert sorted(a["name"] for a in write_agency_folders(records, tmp_path / "out2")) == sorted([long_a, long_b])
    assert load_street_folder(tmp_path / "out")[1].per_agency == {long_a: 1, long_b: 1}
    assert all(len(a["slug"]) <= MAX_SLUG for a in written)


def test_nfc_and_nfd_are_one_agency_with_one_budget_in_the_federation(tmp_path):
    import contextlib

    from experiments.config import load_config
    from experiments.prepare import assign_budgets, materialise

    for month in ("2023-01", "2023-02"):
        _street(tmp_path / "download", month, "cafe", [_row(f"c{month}-{k}", month, NFC if k % 2 else NFD) for k in range(4)])
        _street(tmp_path / "download", month, "ashmoor", [_row(f"a{month}-{k}", month) for k in range(4)])
    (tmp_path / "config.yaml").write_text(
        f"data: {{source: police_uk, path: download}}\ntask: {{test_months: 1}}\nprivacy: {{budgets: {{'{NFC}': 2.5}}}}\n", encoding="utf-8"
    )
    with contextlib.chdir(tmp_path):
        config = load_config("config.yaml")
        federation = materialise(config, tmp_path / "data")
    assert sorted(a["name"] for a in federation.agencies) == ["Ashmoor Police", NFC]
    assign_budgets(config, federation)
    cafe = next(a for a in federation.agencies if a["name"] == NFC)
    assert cafe["budget"] == 2.5 and Path(cafe["ledger"]).parent == Path(cafe["folder"])
