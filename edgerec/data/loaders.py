"""Reading interaction files into one raw frame, whatever their layout.

Formats: GroupLens MovieLens `u.data` (ML-100K), `ratings.dat` (ML-1M/10M) and `ratings.csv`
(ML-20M/25M), RecBole atomic `.inter` files, and any CSV/TSV whose columns a `ColumnMap` names.
Every reader returns the same frame: `user` and `item` as strings (raw ids; the remap to indices
happens in `preprocess`), and `rating` / `timestamp` as float64 when the file has them, rows in
file order.

The happy path is one pass of pandas' C tokenizer with explicit dtypes, because ML-20M holds 20M
rows. Only when pandas fails, or a check after reading finds a hole, is the file scanned line by
line in Python to name the first bad line.
"""

from __future__ import annotations

import csv
import logging
import math
import re
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from edgerec.data.config import ColumnMap, Format
from edgerec.errors import ConfigError, DataError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Layout:
    """How a file is laid out: what pandas is told, and what the error-path scan checks."""

    fmt: Format
    sep: str  # as written in the file: "\t", ",", "::"
    fields: tuple[str, ...]  # every field of a line, in order; the header's names if it has one
    roles: dict[str, int]  # output column -> field position, e.g. {"user": 0, "item": 1}
    header: bool
    integer_ids: bool
    quoted: bool  # CSV quoting rules apply; otherwise fields are split verbatim


_ID_ROLES = ("user", "item")
_VALUE_ROLES = ("rating", "timestamp")
_ML_FIELDS = ("user", "item", "rating", "timestamp")
_ML_CSV_COLUMNS = ColumnMap(user="userId", item="movieId", rating="rating", timestamp="timestamp")
_CSV_COLUMNS = ColumnMap(user="user", item="item", rating="rating", timestamp="timestamp")
_RECBOLE_COLUMNS = ColumnMap(user="user_id", item="item_id", rating="rating", timestamp="timestamp")
_FORMAT_NAMES = ", ".join(f.value for f in Format if f is not Format.auto)
_SEP_NAMES = {"\t": "tabs", ",": "commas", "::": "'::'", ";": "semicolons"}
_TYPED_FIELD = re.compile(r"[^:\s]+:(token|token_seq|float|float_seq)")
_INTEGER = re.compile(r"\s*[+-]?\d+\s*")
_INT64_MAX = 2**63 - 1


def detect_format(path: Path) -> Format:
    """The format of `path`, from its name first and then from its first line."""
    path = Path(path)
    _check_file(path)

    by_name = _format_by_name(path.name)
    if by_name is not None:
        return by_name

    line = _first_line(path)
    by_content = None if line is None else _format_by_content(line)
    if by_content is None:
        raise DataError(
            f"{path}: cannot tell the format from its name or first line; "
            f"formats: {_FORMAT_NAMES} (choose one with --format)"
        )
    logger.debug("%s: detected format %s from its first line", path, by_content.value)
    return by_content


def read_interactions(
    path: Path,
    fmt: Format = Format.auto,
    columns: ColumnMap | None = None,
    sep: str | None = None,
) -> pd.DataFrame:
    """The interactions of one file: `user`, `item` (str), and `rating`, `timestamp` (float64)
    when the file has them, in file order.

    `columns` names the header columns of a csv or inter file; `sep` overrides their separator
    (a csv file's is sniffed: comma or tab). Without a mapping, a csv file needs `user` and
    `item` columns and its `rating` and `timestamp` columns are read where it has them.
    """
    path = Path(path)
    fmt = _as_format(fmt)
    _check_file(path)
    started = time.perf_counter()
    if columns == ColumnMap():
        # The config layer always passes a mapping; its defaults ask for nothing beyond what no
        # mapping gives, so they must not make a u.data or ratings.csv file unreadable.
        columns = None

    if fmt is Format.auto:
        fmt = detect_format(path)
    if columns is not None and fmt is Format.movielens_csv:
        # A mapping means the header is not the GroupLens one: read it as a plain CSV.
        fmt = Format.csv
    _check_options(path, fmt, columns, sep)
    layout = _layout(path, fmt, columns, sep)

    raw = _read_raw(path, layout)
    _check_complete(path, layout, raw)
    frame = _to_frame(layout, raw)

    elapsed_ms = (time.perf_counter() - started) * 1e3
    logger.debug(
        "read %d interactions from %s (%s) in %.0f ms", len(frame), path, fmt.value, elapsed_ms
    )
    return frame


def find_presplit(path: Path) -> tuple[Path, Path, Path] | None:
    """The (train, valid, test) files of a RecBole pre-split dataset, or None.

    `path` is either a folder holding exactly one `NAME.train.inter` / `NAME.valid.inter` /
    `NAME.test.inter` triple, or the `NAME.train.inter` file of such a triple.
    """
    path = Path(path)
    suffix = ".train.inter"

    if path.is_file() and path.name.endswith(suffix) and len(path.name) > len(suffix):
        return _triple(path.parent, path.name[: -len(suffix)])
    if not path.is_dir():
        return None

    names = sorted(p.name[: -len(suffix)] for p in path.glob(f"?*{suffix}") if p.is_file())
    triples = [t for t in (_triple(path, name) for name in names) if t is not None]
    if len(triples) > 1:
        logger.warning(
            "%s holds %d pre-split datasets (%s); pass one NAME.train.inter to choose",
            path,
            len(triples),
            ", ".join(t[0].name for t in triples),
        )
    return triples[0] if len(triples) == 1 else None


def _triple(folder: Path, name: str) -> tuple[Path, Path, Path] | None:
    train, valid, test = (folder / f"{name}.{part}.inter" for part in ("train", "valid", "test"))
    if train.is_file() and valid.is_file() and test.is_file():
        return train, valid, test
    return None


# --- checks before reading -------------------------------------------------------------------


def _as_format(fmt: Format | str) -> Format:
    try:
        return Format(fmt)
    except ValueError:
        raise ConfigError(f"unknown format {fmt!r}; expected auto, {_FORMAT_NAMES}") from None


def _check_file(path: Path) -> None:
    if not path.exists():
        raise DataError(
            f"{path}: no such file; expected a ratings file "
            "(u.data, ratings.dat, ratings.csv, *.inter or a CSV with a header)"
        )
    if path.is_dir():
        known = sorted(p.name for p in path.iterdir() if _format_by_name(p.name) is not None)
        holds = f"; it holds {', '.join(known[:4])}" if known else ""
        raise DataError(f"{path} is a folder, expected a ratings file{holds}")
    if path.stat().st_size == 0:
        raise DataError(f"{path} is empty; expected one interaction per line")


def _check_options(path: Path, fmt: Format, columns: ColumnMap | None, sep: str | None) -> None:
    if columns is not None and fmt not in (Format.csv, Format.inter):
        raise ConfigError(
            f"{path} is a {fmt.value} file without a header; a column mapping applies to csv "
            "and inter files only"
        )
    if sep is not None and fmt not in (Format.csv, Format.inter):
        raise ConfigError(f"{path} is a {fmt.value} file; a separator applies to csv and inter")
    if sep is not None and len(sep) != 1:
        # More than one character would push pandas onto its slow python engine.
        raise ConfigError(f"separator {sep!r} must be one character")


def _format_by_name(name: str) -> Format | None:
    if name == "u.data":
        return Format.udata
    if name == "ratings.csv":
        return Format.movielens_csv
    if name.endswith(".dat"):
        return Format.dat
    if name.endswith(".inter"):
        return Format.inter
    return None


def _format_by_content(line: str) -> Format | None:
    if "::" in line:
        return Format.dat
    tab_fields = line.split("\t")
    if all(_TYPED_FIELD.fullmatch(f) for f in tab_fields):
        return Format.inter
    if len(tab_fields) == 4 and all(_INTEGER.fullmatch(f) for f in tab_fields):
        return Format.udata
    if line.strip() == "userId,movieId,rating,timestamp":
        return Format.movielens_csv

    # A header is a separated line with a name in it; all-numeric lines have no names to map.
    fields = re.split(r"[,\t]", line)
    if len(fields) > 1 and not all(_is_number(f) for f in fields):
        return Format.csv
    return None


def _first_line(path: Path) -> str | None:
    """The first non-blank line (pandas skips blank lines too), without its BOM."""
    with path.open(encoding="utf-8-sig", errors="replace") as handle:
        for line in handle:
            if line.strip("\r\n"):
                return line.rstrip("\r\n")
    return None


# --- layouts ---------------------------------------------------------------------------------


def _layout(path: Path, fmt: Format, columns: ColumnMap | None, sep: str | None) -> _Layout:
    header = _first_line(path)
    if header is None:
        raise DataError(f"{path} holds only blank lines; expected one interaction per line")

    all_fields = {role: i for i, role in enumerate(_ML_FIELDS)}
    if fmt is Format.udata:
        return _Layout(fmt, "\t", _ML_FIELDS, all_fields, False, True, False)
    if fmt is Format.dat:
        return _Layout(fmt, "::", _ML_FIELDS, all_fields, False, True, False)
    if fmt is Format.movielens_csv:
        return _header_layout(path, fmt, header, ",", _ML_CSV_COLUMNS, integer_ids=True)
    if fmt is Format.inter:
        return _header_layout(path, fmt, header, sep or "\t", columns, integer_ids=False)
    return _header_layout(path, fmt, header, sep or _sniff_sep(header), columns, False)


def _sniff_sep(header: str) -> str:
    return "\t" if header.count("\t") > header.count(",") else ","


def _header_layout(
    path: Path,
    fmt: Format,
    header: str,
    sep: str,
    columns: ColumnMap | None,
    integer_ids: bool,
) -> _Layout:
    quoted = fmt is not Format.inter  # RecBole splits on the separator verbatim
    fields = tuple(_split(header, sep, quoted))
    # RecBole headers carry a type after the colon (`user_id:token`); columns are named without.
    names = [f.split(":")[0] for f in fields] if fmt is Format.inter else list(fields)
    if len(names) == 1:
        raise DataError(
            f"{path}: the header {_short(header)} has one column; expected columns separated by "
            f"{_sep_name(sep)}"
        )

    wanted = asdict(columns) if columns is not None else _default_columns(fmt, names)
    roles = {}
    for role, name in wanted.items():
        if name is None:
            continue
        if name not in names:
            raise DataError(_missing_column(path, fmt, role, name, names))
        roles[role] = names.index(name)
    return _Layout(fmt, sep, fields, roles, True, integer_ids, quoted)


def _default_columns(fmt: Format, names: list[str]) -> dict[str, str | None]:
    """The format's own column names; rating and timestamp only where the header has them."""
    wanted = asdict(_RECBOLE_COLUMNS if fmt is Format.inter else _CSV_COLUMNS)
    for role in _VALUE_ROLES:
        if wanted[role] not in names:
            wanted[role] = None
    return wanted


def _missing_column(path: Path, fmt: Format, role: str, name: str, names: list[str]) -> str:
    hints = {
        Format.inter: "RecBole files need user_id:token and item_id:token",
        Format.movielens_csv: "expected userId,movieId,rating,timestamp (or --format csv)",
        Format.csv: "name the columns with a column mapping",
    }
    return f"{path}: no {name!r} column for the {role} (columns: {_listing(names)}); {hints[fmt]}"


# --- reading ---------------------------------------------------------------------------------


def _read_raw(path: Path, layout: _Layout) -> pd.DataFrame:
    options = _pandas_options(layout)
    try:
        with warnings.catch_warnings():
            # A first line with more fields than the rest makes pandas drop fields with only a
            # ParserWarning; as an error it reaches the scan below like any other bad line.
            warnings.simplefilter("error", pd.errors.ParserWarning)
            return pd.read_csv(path, **options)
    except (ValueError, OverflowError, pd.errors.ParserWarning) as err:
        # ParserError, EmptyDataError and UnicodeDecodeError are all ValueErrors.
        raise _diagnose(path, layout, err) from err


def _pandas_options(layout: _Layout) -> dict:
    id_dtype = "int64" if layout.integer_ids else "str"
    names = [f"f{i}" for i in range(len(layout.fields))]
    dtypes = {
        names[pos]: id_dtype if role in _ID_ROLES else "float64"
        for role, pos in layout.roles.items()
    }
    pandas_sep = layout.sep

    if layout.sep == "::":
        # `::` is two characters, which only pandas' python engine takes (several times slower).
        # Split on ':' instead: the C engine then sees an empty field between each pair of
        # values; those columns are read as float32 (all NaN) and checked to be empty.
        pandas_sep = ":"
        names = [f"f{i // 2}" if i % 2 == 0 else f"sep{i // 2}" for i in range(2 * len(names) - 1)]
        dtypes.update({name: "float32" for name in names if name.startswith("sep")})

    # Limitation: with usecols pandas ignores fields past the header, so a csv or inter file with
    # unused columns accepts over-long rows, because reading every column would cost more than the
    # check is worth. Files whose columns are all used (ML, most RecBole files) are checked.
    usecols = None
    if len(layout.roles) < len(layout.fields):
        usecols = [names[pos] for pos in sorted(layout.roles.values())]

    return {
        "sep": pandas_sep,
        "header": 0 if layout.header else None,
        "names": names,
        "usecols": usecols,
        "dtype": dtypes,
        "engine": "c",
        "quoting": csv.QUOTE_MINIMAL if layout.quoted else csv.QUOTE_NONE,
        "index_col": False,
        # Only an empty field is missing: "NA" or "null" can be a real item token.
        "keep_default_na": False,
        "na_values": [""],
        "encoding": "utf-8",
    }


def _check_complete(path: Path, layout: _Layout, raw: pd.DataFrame) -> None:
    """Short rows and empty fields come back from pandas as NaN rather than as errors."""
    if raw.empty:
        raise DataError(f"{path} has a header but no interactions")

    for role, pos in layout.roles.items():
        column = raw[f"f{pos}"]
        if role in _VALUE_ROLES:
            bad = not np.isfinite(column.to_numpy()).all()
        else:
            bad = bool(column.isna().any())
        if bad:
            raise _diagnose(path, layout, None)

    separators = [name for name in raw.columns if name.startswith("sep")]
    if separators and raw[separators].notna().to_numpy().any():
        raise _diagnose(path, layout, None)


def _to_frame(layout: _Layout, raw: pd.DataFrame) -> pd.DataFrame:
    data = {}
    for role in _ID_ROLES:
        column = raw[f"f{layout.roles[role]}"]
        data[role] = _ids_as_str(column.to_numpy()) if layout.integer_ids else column.array
    for role in _VALUE_ROLES:
        if role in layout.roles:
            data[role] = raw[f"f{layout.roles[role]}"].to_numpy(dtype=np.float64)
    return pd.DataFrame(data, copy=False)  # the arrays are fresh; copying costs ~15% at 20M rows


def _ids_as_str(ids: np.ndarray) -> pd.api.extensions.ExtensionArray:
    """Integer ids as strings, converting each distinct id once (ML-20M: 20M rows, 138k users)."""
    codes, uniques = pd.factorize(ids)
    return pd.array(uniques.astype(str), dtype="str").take(codes)


# --- the error path --------------------------------------------------------------------------


def _diagnose(path: Path, layout: _Layout, err: Exception | None) -> DataError:
    """A DataError naming the first bad line; scans the whole file, so only on failure."""
    problem = _scan(path, layout)
    if problem is not None:
        return DataError(problem)
    detail = "a field is empty or missing" if err is None else str(err).strip().splitlines()[0]
    return DataError(f"{path}: cannot be read as {layout.fmt.value}: {detail[:120]}")


def _scan(path: Path, layout: _Layout) -> str | None:
    header_pending = layout.header
    with path.open("rb") as handle:
        for number, raw_line in enumerate(handle, start=1):
            try:
                line = raw_line.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError:
                return f"{path} line {number}: not UTF-8 text"
            if number == 1:
                line = line.removeprefix("\ufeff")
            if not line:
                continue
            if header_pending:
                header_pending = False
                continue
            problem = _line_problem(_split(line, layout.sep, layout.quoted), layout)
            if problem is not None:
                return f"{path} line {number}: {problem}"
    return None


def _line_problem(fields: list[str], layout: _Layout) -> str | None:
    if len(fields) != len(layout.fields):
        found = "1 field" if len(fields) == 1 else f"{len(fields)} fields"
        return (
            f"found {found}, expected {len(layout.fields)} ({_listing(layout.fields)}) "
            f"separated by {_sep_name(layout.sep)}"
        )

    for role, pos in layout.roles.items():
        value = fields[pos]
        if role in _VALUE_ROLES and not _is_number(value):
            return f"{role} {_short(value)} is not a number"
        if role in _ID_ROLES and not value:
            return f"empty {role} id"
        if role in _ID_ROLES and layout.integer_ids and not _is_int64(value):
            return (
                f"{role} id {_short(value)} is not a 64-bit integer, as {layout.fmt.value} ids are"
            )
    return None


def _split(line: str, sep: str, quoted: bool) -> list[str]:
    if quoted:
        return next(csv.reader([line], delimiter=sep))
    return line.split(sep)


def _is_number(value: str) -> bool:
    try:
        return math.isfinite(float(value))
    except ValueError:
        return False


def _is_int64(value: str) -> bool:
    return _INTEGER.fullmatch(value) is not None and abs(int(value)) <= _INT64_MAX


def _sep_name(sep: str) -> str:
    return _SEP_NAMES.get(sep, repr(sep))


def _short(value: str, limit: int = 32) -> str:
    return repr(value if len(value) <= limit else value[:limit] + "…")


def _listing(names: tuple[str, ...] | list[str], limit: int = 8) -> str:
    shown = ", ".join(names[:limit])
    return shown if len(names) <= limit else f"{shown}, … ({len(names)} in all)"
