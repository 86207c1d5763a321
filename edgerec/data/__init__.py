"""Datasets: loaders, implicit-feedback preprocessing, splits, the synthetic dataset, downloads.

`load_dataset(config)` is the one entry point the rest of edgerec uses: it reads the source
named by a `DataConfig`, turns it into implicit feedback over contiguous indices and splits it
(or takes a pre-split triple as it is).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from edgerec.data.config import ColumnMap, DataConfig, Format
from edgerec.data.synthetic import SyntheticConfig

if TYPE_CHECKING:
    from edgerec.data.interactions import IdMap, Interactions, SplitDataset

__all__ = [
    "ColumnMap",
    "DataConfig",
    "Format",
    "IdMap",
    "Interactions",
    "SplitDataset",
    "SyntheticConfig",
    "load_dataset",
]

log = logging.getLogger(__name__)


def __getattr__(name: str):
    # The in-memory classes need numpy; importing them lazily keeps `edgerec --help`, which
    # reads the configs of this package, free of it.
    if name in ("IdMap", "Interactions", "SplitDataset"):
        from edgerec.data import interactions

        return getattr(interactions, name)
    raise AttributeError(f"module 'edgerec.data' has no attribute {name!r}")


def load_dataset(config: DataConfig) -> SplitDataset:
    from edgerec.data import preprocess, splits, synthetic

    if config.is_synthetic:
        name = f"synthetic-{config.synthetic.n_users}x{config.synthetic.n_items}"
        table = synthetic.generate(config.synthetic)
        return _split_one(name, table, config, preprocess, splits)

    presplit = _presplit_paths(config)
    if presplit is not None:
        return _load_presplit(presplit, config, preprocess)

    path = Path(config.source)
    table = _read(path, config)
    return _split_one(path.name, table, config, preprocess, splits)


def _read(path: Path, config: DataConfig):
    from edgerec.data.loaders import read_interactions

    return read_interactions(path, Format(config.format), columns=config.columns, sep=config.sep)


def _split_one(name, table, config: DataConfig, preprocess, splits) -> SplitDataset:
    from edgerec.data.interactions import SplitDataset

    table = preprocess.to_implicit(
        table, source=name, rating_threshold=config.rating_threshold, kcore=config.kcore
    )
    (data,), id_map = preprocess.remap([table])
    if config.split == "loo":
        train, valid, test = splits.leave_one_out(data, config.seed)
    else:
        train, valid, test = splits.ratio_split(data, config.seed, config.ratios)
    dataset = SplitDataset(
        name=name,
        n_users=len(id_map.users),
        n_items=len(id_map.items),
        train=data.take(train),
        valid=data.take(valid),
        test=data.take(test),
        id_map=id_map,
    )
    log.info(
        "loaded %s: %d users, %d items, %d interactions",
        name,
        dataset.n_users,
        dataset.n_items,
        dataset.n_interactions,
    )
    return dataset


def _presplit_paths(config: DataConfig) -> tuple[Path, Path, Path] | None:
    if config.valid_path is not None:
        return Path(config.source), Path(config.valid_path), Path(config.test_path)
    from edgerec.data.loaders import find_presplit

    return find_presplit(Path(config.source))


def _load_presplit(paths, config: DataConfig, preprocess) -> SplitDataset:
    from edgerec.data.interactions import SplitDataset

    tables = [
        preprocess.to_implicit(
            _read(p, config), source=p.name, rating_threshold=config.rating_threshold
        )
        for p in paths
    ]
    (train, valid, test), id_map = preprocess.remap(tables)
    return SplitDataset(
        name=paths[0].name.removesuffix(".train.inter"),
        n_users=len(id_map.users),
        n_items=len(id_map.items),
        train=train,
        valid=valid,
        test=test,
        id_map=id_map,
    )
