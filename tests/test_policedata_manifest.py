"""policedata.manifest: a manifest names agency folders and slugs, which become ledger and model
paths; each is confined to the manifest's folder, for `peel run` and for `peel deploy` alike."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from experiments.deploy import config as deploy_config
from experiments.deploy.errors import DeployError
from policedata.errors import DataError
from policedata.manifest import confined, read_manifest


def _folder(tmp_path: Path, agencies: list[dict]) -> Path:
    folder = tmp_path / "agencies"
    for sub in ("a", "b"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    (tmp_path / "elsewhere").mkdir(exist_ok=True)
    (folder / "manifest.json").write_text(json.dumps({"months": ["2023-01", "2023-04"], "agencies": agencies}))
    return folder


def test_confined_accepts_paths_inside_and_refuses_every_way_out(tmp_path):
    (tmp_path / "base" / "in").mkdir(parents=True)
    (tmp_path / "out").mkdir()
    (tmp_path / "base" / "link").symlink_to(tmp_path / "out", target_is_directory=True)
    (tmp_path / "base" / "loop").symlink_to(tmp_path / "base" / "loop")
    assert confined(tmp_path / "base", "in", "f") == (tmp_path / "base" / "in").resolve()
    assert confined(tmp_path / "base", "in/../in", "f") == (tmp_path / "base" / "in").resolve()
    for bad in (str(tmp_path / "out"), "../out", "link", ".", "in/../..", "loop", "", "a\x00b"):
        with pytest.raises(DataError, match="^f: "):
            confined(tmp_path / "base", bad, "f")


def test_deploy_refuses_a_manifest_folder_outside_it(tmp_path):
    folder = _folder(tmp_path, [{"name": "A Police", "slug": "a", "folder": "a"}, {"name": "B Police", "slug": "b", "folder": "../elsewhere"}])
    path = tmp_path / "deploy.yaml"
    path.write_text(f"agencies: {folder}\nbudget: 2.5\n", encoding="utf-8")
    with pytest.raises(DeployError, match=r"agencies: .*manifest.json: agency 2 \('B Police'\): folder: '../elsewhere' resolves to .*outside"):
        deploy_config.load(path, tmp_path / "d")
    assert not (tmp_path / "d").exists()


def test_one_line_errors_for_what_peel_generate_would_not_write(tmp_path):
    cases = [
        ([{"name": "A", "slug": "a", "folder": "a"}, {"name": "A", "slug": "b", "folder": "b"}], "agency 2 .*same name as agency 1"),
        ([{"name": "A", "slug": "a", "folder": "a"}, {"name": "B", "slug": "a", "folder": "b"}], "agency 2 .*same slug as agency 1"),
        ([{"name": "A", "slug": "a\nb", "folder": "a"}], r"agency 1 \('A'\): slug 'a\\nb' is not a plain slug"),
        ([{"name": "A", "slug": "a", "folder": 3}], r"agency 1 \('A'\): folder: 3 is not a relative path"),
        ([], "names no agency"),
    ]
    for agencies, message in cases:
        folder = _folder(tmp_path, agencies)
        with pytest.raises(DataError, match=message) as caught:
            read_manifest(folder)
        assert "\n" not in str(caught.value)
