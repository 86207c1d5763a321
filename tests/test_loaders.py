"""Loaders: every format from small files with known contents, detection, and bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from edgerec.data.loaders import (
    ColumnMap,
    Format,
    detect_format,
    find_presplit,
    read_interactions,
)
from edgerec.errors import ConfigError, DataError

UDATA = "196\t242\t3\t881250949\n186\t302\t3\t891717742\n22\t377\t1\t878887116\n"
DAT = "1::1193::5::978300760\n1::661::3::978302109\n2::3068::4::978299000\n"
ML_CSV = (
    "userId,movieId,rating,timestamp\n1,2,3.5,1112486027\n1,29,3.5,1112484676\n7,32,4.0,974520014\n"
)
INTER = (
    "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
    "196\t242\t3\t881250949\n186\t302\t3\t891717742\n22\t377\t1\t878887116\n"
)


def write(folder: Path, name: str, text: str, encoding: str = "utf-8") -> Path:
    path = folder / name
    path.write_bytes(text.encode(encoding))  # bytes: no newline translation
    return path


def expected(users, items, rating=None, timestamp=None) -> pd.DataFrame:
    data = {"user": pd.array(users, dtype="str"), "item": pd.array(items, dtype="str")}
    if rating is not None:
        data["rating"] = np.array(rating, dtype=np.float64)
    if timestamp is not None:
        data["timestamp"] = np.array(timestamp, dtype=np.float64)
    return pd.DataFrame(data)


ML100K_HEAD = expected(
    ["196", "186", "22"], ["242", "302", "377"], [3, 3, 1], [881250949, 891717742, 878887116]
)


# --- every format ----------------------------------------------------------------------------


def test_reads_udata(tmp_path):
    frame = read_interactions(write(tmp_path, "u.data", UDATA))
    pd.testing.assert_frame_equal(frame, ML100K_HEAD)


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_reads_dat(tmp_path, newline):
    frame = read_interactions(write(tmp_path, "ratings.dat", DAT.replace("\n", newline)))
    want = expected(
        ["1", "1", "2"], ["1193", "661", "3068"], [5, 3, 4], [978300760, 978302109, 978299000]
    )
    pd.testing.assert_frame_equal(frame, want)


def test_reads_movielens_csv(tmp_path):
    frame = read_interactions(write(tmp_path, "ratings.csv", ML_CSV))
    want = expected(
        ["1", "1", "7"], ["2", "29", "32"], [3.5, 3.5, 4.0], [1112486027, 1112484676, 974520014]
    )
    pd.testing.assert_frame_equal(frame, want)


def test_reads_inter(tmp_path):
    frame = read_interactions(write(tmp_path, "ml.inter", INTER))
    pd.testing.assert_frame_equal(frame, ML100K_HEAD)


def test_inter_needs_only_user_and_item(tmp_path):
    path = write(tmp_path, "x.inter", "user_id:token\titem_id:token\nu1\ti9\nu2\ti8\n")
    pd.testing.assert_frame_equal(read_interactions(path), expected(["u1", "u2"], ["i9", "i8"]))


def test_inter_finds_fields_by_name_and_keeps_tokens_verbatim(tmp_path):
    # Columns out of order, an unused text column, tokens that pandas would otherwise take for
    # missing values ("NA") or numbers with leading zeros ("007").
    text = (
        "item_id:token\treview:token_seq\tuser_id:token\ttimestamp:float\n"
        "B00X\tgood film\tA1\t10\n"
        "NA\t\t007\t20\n"
    )
    frame = read_interactions(write(tmp_path, "amazon.inter", text))
    pd.testing.assert_frame_equal(frame, expected(["A1", "007"], ["B00X", "NA"], None, [10, 20]))


def test_integer_formats_keep_ids_as_strings(tmp_path):
    frame = read_interactions(write(tmp_path, "u.data", "10\t7\t5\t1\n2\t7\t4\t2\n"))
    assert frame["user"].tolist() == ["10", "2"]
    assert pd.api.types.is_string_dtype(frame["user"]) and pd.api.types.is_string_dtype(
        frame["item"]
    )


def test_csv_with_mapping(tmp_path):
    path = write(tmp_path, "log.csv", "uid,extra,iid,score,ts\na,x,p,1.5,100\nb,y,q,2,200\n")
    frame = read_interactions(path, columns=ColumnMap(user="uid", item="iid", rating="score"))
    pd.testing.assert_frame_equal(frame, expected(["a", "b"], ["p", "q"], [1.5, 2.0]))


def test_csv_sniffs_tab_and_picks_up_timestamp_without_mapping(tmp_path):
    path = write(tmp_path, "log.tsv", "timestamp\titem\tuser\n5\tp\ta\n6\tq,r\tb\n")
    frame = read_interactions(path, Format.csv)
    pd.testing.assert_frame_equal(frame, expected(["a", "b"], ["p", "q,r"], None, [5, 6]))


def test_csv_with_explicit_separator_and_quotes(tmp_path):
    path = write(tmp_path, "log.txt", 'user;item;rating\n"a;b";p;4\nc;q;5\n')
    frame = read_interactions(path, Format.csv, sep=";")
    pd.testing.assert_frame_equal(frame, expected(["a;b", "c"], ["p", "q"], [4, 5]))


# --- detection and override ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "fmt"),
    [
        ("u.data", Format.udata),
        ("ratings.dat", Format.dat),
        ("ml-10m.dat", Format.dat),
        ("ratings.csv", Format.movielens_csv),
        ("yelp.inter", Format.inter),
    ],
)
def test_detects_format_by_name(tmp_path, name, fmt):
    # The content would say csv: the name wins.
    assert detect_format(write(tmp_path, name, "a,b\n1,2\n")) is fmt


@pytest.mark.parametrize(
    ("text", "fmt"),
    [
        (DAT, Format.dat),
        (INTER, Format.inter),
        (UDATA, Format.udata),
        (ML_CSV, Format.movielens_csv),
        ("user,item\na,b\n", Format.csv),
        ("\nuser\titem\na\tb\n", Format.csv),
    ],
)
def test_detects_format_by_content(tmp_path, text, fmt):
    assert detect_format(write(tmp_path, "data.txt", text)) is fmt


@pytest.mark.parametrize("text", ["1,2,3\n4,5,6\n", "hello\n", "1\t2\t3\n"])
def test_unknown_format_lists_formats_and_the_override(tmp_path, text):
    path = write(tmp_path, "data.txt", text)
    with pytest.raises(DataError) as info:
        read_interactions(path)
    message = str(info.value)
    assert str(path) in message
    assert "udata, dat, movielens-csv, inter, csv" in message and "--format" in message


def test_format_overrides_detection(tmp_path):
    path = write(tmp_path, "export.dat", UDATA)  # the name says dat, the content is u.data
    with pytest.raises(DataError, match=r"line 1: found 1 field, expected 4"):
        read_interactions(path)
    pd.testing.assert_frame_equal(read_interactions(path, Format.udata), ML100K_HEAD)
    pd.testing.assert_frame_equal(read_interactions(path, "udata"), ML100K_HEAD)


def test_unknown_format_name_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="unknown format 'parquet'"):
        read_interactions(write(tmp_path, "u.data", UDATA), "parquet")


def test_mapping_on_a_headerless_format_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="column mapping applies to csv and inter"):
        read_interactions(write(tmp_path, "u.data", UDATA), columns=ColumnMap(user="u"))


@pytest.mark.parametrize(("name", "text"), [("u.data", UDATA), ("ml.inter", INTER)])
def test_default_mapping_counts_as_none(tmp_path, name, text):
    frame = read_interactions(write(tmp_path, name, text), columns=ColumnMap())
    pd.testing.assert_frame_equal(frame, ML100K_HEAD)


def test_mapping_turns_ratings_csv_into_plain_csv(tmp_path):
    path = write(tmp_path, "ratings.csv", "u,i\nx,y\n")
    frame = read_interactions(path, columns=ColumnMap(user="u", item="i"))
    pd.testing.assert_frame_equal(frame, expected(["x"], ["y"]))


# --- pre-split data --------------------------------------------------------------------------


def make_triple(folder: Path, name: str, parts=("train", "valid", "test")) -> list[Path]:
    return [write(folder, f"{name}.{part}.inter", INTER) for part in parts]


def test_presplit_folder_with_one_triple(tmp_path):
    train, valid, test = make_triple(tmp_path, "ml-1m")
    write(tmp_path, "ml-1m.item", "item_id:token\n1\n")
    assert find_presplit(tmp_path) == (train, valid, test)


def test_presplit_from_the_train_file(tmp_path):
    train, valid, test = make_triple(tmp_path, "ml-1m")
    assert find_presplit(train) == (train, valid, test)


@pytest.mark.parametrize("parts", [("train", "test"), ("train", "valid"), ("valid", "test")])
def test_presplit_needs_all_three(tmp_path, parts):
    files = make_triple(tmp_path, "ml-1m", parts)
    assert find_presplit(tmp_path) is None
    assert find_presplit(files[0]) is None


def test_presplit_folder_with_two_triples_is_ambiguous(tmp_path, caplog):
    make_triple(tmp_path, "a")
    make_triple(tmp_path, "b")
    assert find_presplit(tmp_path) is None
    assert "holds 2 pre-split datasets (a.train.inter, b.train.inter)" in caplog.text
    assert find_presplit(tmp_path / "b.train.inter") == tuple(
        tmp_path / f"b.{part}.inter" for part in ("train", "valid", "test")
    )


def test_presplit_is_none_for_other_paths(tmp_path):
    assert find_presplit(write(tmp_path, "ml.inter", INTER)) is None
    assert find_presplit(tmp_path / "missing.train.inter") is None
    assert find_presplit(tmp_path) is None


# --- bad input -------------------------------------------------------------------------------

GOOD_UDATA_LINE = "1\t2\t3\t4\n"


@pytest.mark.parametrize(
    ("name", "text", "options", "wanted"),
    [
        (
            "u.data",
            GOOD_UDATA_LINE * 16 + "1\t2\t3\n" + GOOD_UDATA_LINE,
            {},
            "line 17: found 3 fields, expected 4 (user, item, rating, timestamp) separated by tabs",
        ),
        ("u.data", GOOD_UDATA_LINE * 4 + "1\t2\t3\t4\t5\n", {}, "line 5: found 5 fields"),
        ("u.data", "1\t2\t3\t4\t5\n" + GOOD_UDATA_LINE * 3, {}, "line 1: found 5 fields"),
        ("u.data", GOOD_UDATA_LINE * 2 + "1\tabc\t3\t4\n", {}, "line 3: item id 'abc' is not"),
        ("u.data", GOOD_UDATA_LINE + "1\t2.5\t3\t4\n", {}, "line 2: item id '2.5' is not"),
        ("u.data", "99999999999999999999\t2\t3\t4\n", {}, "line 1: user id '9999"),
        (
            "u.data",
            GOOD_UDATA_LINE + "1\t2\tgood\t4\n",
            {},
            "line 2: rating 'good' is not a number",
        ),
        ("u.data", GOOD_UDATA_LINE + "1\t2\t3\t\n", {}, "line 2: timestamp '' is not a number"),
        ("ratings.dat", DAT + "x::2::3::4\n", {}, "line 4: user id 'x' is not"),
        ("ratings.dat", "1:2:3:4\n" + DAT, {}, "line 1: found 1 field, expected 4"),
        ("ratings.dat", DAT + "1::2::3::4:\n", {}, "line 4: timestamp '4:' is not a number"),
        ("ratings.dat", DAT + "1::2::3\n", {}, "line 4: found 3 fields, expected 4"),
        ("ratings.dat", DAT + "1:5:2::3::4\n", {}, "line 4: found 3 fields, expected 4"),
        ("ratings.csv", ML_CSV + "1,tt0114709,4,5\n", {}, "line 5: item id 'tt0114709' is not"),
        ("ml.inter", INTER + "1\t2\t3\tlater\n", {}, "line 5: timestamp 'later' is not a number"),
        ("ml.inter", INTER + "1\t2\t3\n", {}, "line 5: found 3 fields, expected 4"),
        ("ml.inter", INTER + "1\t\t3\t4\n", {}, "line 5: empty item id"),
        ("ml.inter", INTER + "1\t2\t3\t4\t5\n", {}, "line 5: found 5 fields"),
        (
            "log.csv",
            "u,i,r\na,b,1\nc,,2\n",
            {"columns": ColumnMap(user="u", item="i", rating="r")},
            "line 3: empty item id",
        ),
        ("log.csv", "user,item,rating\na,b,1\nc,d,x\n", {}, "line 3: rating 'x' is not a number"),
    ],
)
def test_bad_line_names_file_and_line(tmp_path, name, text, options, wanted):
    path = write(tmp_path, name, text)
    with pytest.raises(DataError) as info:
        read_interactions(path, **options)
    message = str(info.value)
    assert message.startswith(f"{path} ") and wanted in message
    assert "\n" not in message and len(message) - len(str(path)) < 200


@pytest.mark.filterwarnings("ignore::pandas.errors.ParserWarning")
def test_long_first_line_is_an_error_even_where_warnings_are_ignored(tmp_path):
    # pandas only warns when the first line is longer than the rest, and drops its extra field.
    path = write(tmp_path, "u.data", "1\t2\t3\t4\t5\n" + GOOD_UDATA_LINE)
    with pytest.raises(DataError, match=r"u\.data line 1: found 5 fields"):
        read_interactions(path)


def test_non_utf8_line(tmp_path):
    path = tmp_path / "ml.inter"
    path.write_bytes(INTER.encode() + "1\tcaf\u00e9\t3\t4\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"ml\.inter line 5: not UTF-8 text"):
        read_interactions(path)


@pytest.mark.parametrize(
    ("name", "text", "options", "wanted"),
    [
        ("u.data", "", {}, "is empty"),
        ("u.data", "\n\n", {}, "holds only blank lines"),
        ("log.csv", "user,item\n", {}, "has a header but no interactions"),
        (
            "log.csv",
            "uid,iid,rating\na,b,1\n",
            {"columns": ColumnMap(user="uid", item="movie")},
            "no 'movie' column for the item (columns: uid, iid, rating)",
        ),
        ("log.csv", "uid,iid\na,b\n", {}, "no 'user' column for the user (columns: uid, iid)"),
        (
            "ml.inter",
            "user_id:token\trating:float\n1\t2\n",
            {},
            "no 'item_id' column for the item (columns: user_id, rating); RecBole files need",
        ),
        ("ratings.csv", "user,item\n1,2\n", {}, "expected userId,movieId,rating,timestamp"),
        (
            "log.csv",
            "user item\na b\n",
            {"fmt": Format.csv},
            "has one column; expected columns separated by commas",
        ),
    ],
)
def test_bad_file_names_the_file(tmp_path, name, text, options, wanted):
    path = write(tmp_path, name, text)
    with pytest.raises(DataError) as info:
        read_interactions(path, **options)
    message = str(info.value)
    assert message.startswith(str(path)) and wanted in message
    assert "\n" not in message


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="nope.data: no such file"):
        read_interactions(tmp_path / "nope.data")


def test_folder_instead_of_file(tmp_path):
    write(tmp_path, "u.data", UDATA)
    with pytest.raises(DataError, match="is a folder, expected a ratings file; it holds u.data"):
        read_interactions(tmp_path)


# --- the real MovieLens-100K -----------------------------------------------------------------


@pytest.mark.ml100k
def test_ml100k_both_files_load_the_same_interactions(ml100k_dir):
    udata = read_interactions(ml100k_dir / "u.data")
    inter = read_interactions(ml100k_dir / "ml-100k.inter")

    for frame in (udata, inter):
        assert len(frame) == 100_000
        assert frame["user"].nunique() == 943 and frame["item"].nunique() == 1_682
        assert list(frame.columns) == ["user", "item", "rating", "timestamp"]

    def canonical(frame):
        return frame.sort_values(["user", "item", "timestamp"]).reset_index(drop=True)

    pd.testing.assert_frame_equal(canonical(udata), canonical(inter))
