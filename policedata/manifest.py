"""Reading the `manifest.json` of a `peel generate` folder (`data.source: agencies`).

The manifest is data, not trusted configuration: every agency folder it names becomes the place
an agency's budget ledger is written, and every slug becomes part of a file name in a run
folder. So each folder is resolved (symlinks followed) and must lie strictly inside the
manifest's own folder, each slug must be a plain slug, and names, slugs and folders must be
distinct — checked here, before anything is written or charged.
"""

from __future__ import annotations

import json
import re
import stat
import unicodedata
from pathlib import Path
from typing import Any

from .checks import implausible_month
from .errors import DataError
from .files import _SLUG

MANIFEST_FILE = "manifest.json"
_MONTH = re.compile(r"\d{4}-(0[1-9]|1[0-2])")
# Beyond this a manifest is not one `peel generate` wrote (and would only waste memory).
MAX_MANIFEST_BYTES = 16_000_000


def confined(base: Path, relative: str, what: str) -> Path:
    """`base / relative`, resolved, if it lies strictly inside `base` (also resolved): a
    relative path with no way out through `..` or a symlink. DataError (one line) otherwise."""
    if not isinstance(relative, str) or not relative or "\x00" in relative:
        raise DataError(f"{what}: {relative!r} is not a relative path")
    if Path(relative).is_absolute():
        raise DataError(f"{what}: {relative!r} is an absolute path; it must be a folder inside {base}")
    root = base.resolve()
    try:
        target = (root / relative).resolve()
    except (OSError, RuntimeError) as exc:  # a symlink loop
        raise DataError(f"{what}: {relative!r} cannot be resolved ({exc.__class__.__name__})") from None
    if target == root or not target.is_relative_to(root):
        raise DataError(f"{what}: {relative!r} resolves to {target}, outside {root}; an agency folder must lie inside the manifest's folder")
    return target


def _text(value: object, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise DataError(f"{what}: must be a non-empty string (got {value!r:.80})")
    return value


def read_manifest(folder: Path, *, months: bool = True) -> dict[str, Any]:
    """The manifest of `folder`: {"months": [first, …, last] ("YYYY-MM"), "agencies": [{"name",
    "slug", "folder" (absolute, resolved, inside `folder`)}]}. Raises DataError (one line naming
    the manifest and the agency) for anything `peel generate` would not have written. With
    `months=False` (a deployment reads only the agencies) the months are not required."""
    path = folder / MANIFEST_FILE
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):  # a FIFO would block the read, /dev/zero never end it
            raise DataError(f"{path}: not a regular file; not a manifest written by `peel generate`")
        if info.st_size > MAX_MANIFEST_BYTES:
            raise DataError(f"{path}: larger than {MAX_MANIFEST_BYTES:,} bytes; not a manifest written by `peel generate`")
        manifest = json.loads(path.read_text(encoding="utf-8"))
        month_list = [str(m) for m in manifest["months"]] if months else []
        raw_agencies = manifest["agencies"]
        if not isinstance(raw_agencies, list):
            raise TypeError("agencies is not a list")
    except (OSError, ValueError, KeyError, TypeError, RecursionError) as exc:
        raise DataError(f"{path}: not a manifest written by `peel generate` ({exc.__class__.__name__}: {str(exc)[:200]!r})") from None
    if months and (not month_list or not all(_MONTH.fullmatch(m) for m in month_list) or month_list != sorted(month_list)):
        raise DataError(f"{path}: months: expected YYYY-MM months in order (got {month_list[:4]!r:.120})")
    for month in month_list:  # the test split is counted back from the last month
        if why := implausible_month(month):
            raise DataError(f"{path}: months: {month} {why}")
    if not raw_agencies:
        raise DataError(f"{path}: agencies: the manifest names no agency")
    agencies: list[dict[str, Any]] = []
    seen: dict[str, dict[object, str]] = {"name": {}, "slug": {}, "folder": {}}
    for i, entry in enumerate(raw_agencies, start=1):
        where = f"{path}: agency {i}"
        if not isinstance(entry, dict):
            raise DataError(f"{where}: not a mapping with name, slug and folder")
        name = _text(entry.get("name"), f"{where}: name")
        where = f"{path}: agency {i} ({name!r:.80})"
        slug = _text(entry.get("slug"), f"{where}: slug")
        if not _SLUG.fullmatch(slug):
            raise DataError(f"{where}: slug {slug!r:.80} is not a plain slug (a-z, 0-9 and '-'); Peel names files after it")
        target = confined(folder, entry.get("folder"), f"{where}: folder")  # type: ignore[arg-type]
        if not target.is_dir():
            raise DataError(f"{where}: folder {entry['folder']!r} is not a folder")
        # One identity per agency: the same name in NFC and NFD is one name.
        for key, value in (("name", unicodedata.normalize("NFC", name)), ("slug", slug), ("folder", target)):
            if value in seen[key]:
                raise DataError(f"{where}: same {key} as {seen[key][value]}")
            seen[key][value] = f"agency {len(agencies) + 1}"
        for other in agencies:  # one agency's folder inside another's would mix their records
            if target.is_relative_to(other["folder"]) or Path(other["folder"]).is_relative_to(target):
                raise DataError(f"{where}: folder {entry['folder']!r} overlaps the folder of {other['name']!r:.80}")
        # NFC, as the loader gives the names in the records: the agency's records are found by it.
        agencies.append({"name": unicodedata.normalize("NFC", name), "slug": slug, "folder": str(target)})
    return {"months": month_list, "agencies": agencies}
