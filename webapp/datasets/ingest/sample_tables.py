"""scikit-learn's bundled tables (no download) as the CSV files a user would export, for the demo,
the benches and the tests: named feature columns, then the class name in a "label" column."""

import csv
from pathlib import Path

TABLES = {"breast-cancer": "load_breast_cancer", "wine": "load_wine"}


def write_table_csv(path: Path, name: str) -> Path:
    from sklearn import datasets

    try:
        bunch = getattr(datasets, TABLES[name])()
    except KeyError:
        raise ValueError(f"unknown sample table {name!r}; one of {', '.join(TABLES)}") from None
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow([*bunch.feature_names, "label"])
        for row, label in zip(bunch.data.tolist(), bunch.target.tolist(), strict=True):
            w.writerow([*row, bunch.target_names[label]])
    return Path(path)
