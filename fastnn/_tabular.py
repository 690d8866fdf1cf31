"""Tabular data for the command line: CSV files with a header, numeric features, a
target column, and the scaler and label encoding that ``fastnn train`` saves with a
model so that ``predict`` and ``evaluate`` prepare new data the same way.

Every problem with the data raises ``ValueError`` with one line naming the file, the
column and the line, which the command line prints as its error.
"""

import csv
import math

import numpy as np

#: A numeric target with at most this many distinct whole values is taken for class
#: labels (``--task auto``); more is a regression target.
MAX_AUTO_CLASSES = 20


class Table:
    """A CSV file read into memory: ``columns`` (the header), ``rows`` (lists of
    strings) and ``lines`` (the file line of each row, for error messages)."""

    def __init__(self, path, columns, rows, lines):
        self.path = str(path)
        self.columns = columns
        self.rows = rows
        self.lines = lines

    def __len__(self):
        return len(self.rows)

    def index(self, names, what="column"):
        """The positions of ``names``; a missing one raises naming all of them."""
        where = {name: i for i, name in enumerate(self.columns)}
        missing = [name for name in names if name not in where]
        if missing:
            plural = f"{len(missing)} {what}s" if len(missing) > 1 else f"the {what}"
            raise ValueError(f"{self.path} lacks {plural} {_listing(missing)}; its columns "
                             f"are {_listing(self.columns)}")
        return [where[name] for name in names]

    def strings(self, name):
        j = self.index([name])[0]
        return [row[j] for row in self.rows]

    def numbers(self, names, what="feature"):
        """Columns ``names`` as a float64 array ``(n_rows, len(names))``."""
        cols = self.index(names)
        try:  # NumPy parses the whole table at once; the loop below finds a bad cell
            out = np.array([[row[j] for j in cols] for row in self.rows], dtype=np.float64)
            if np.all(np.isfinite(out)):
                return out
        except ValueError:
            pass
        out = np.empty((len(self.rows), len(cols)))
        for i, (row, line) in enumerate(zip(self.rows, self.lines)):
            for k, j in enumerate(cols):
                out[i, k] = _number(row[j], self.path, line, self.columns[j], what)
        return out


def _listing(names, limit=8):
    """``'a', 'b', 'c'``, cut short after ``limit`` names: error messages stay one line."""
    shown = ", ".join(repr(n) for n in names[:limit])
    return shown + (f", ... ({len(names)} in all)" if len(names) > limit else "")


def _number(text, path, line, column, what):
    text = text.strip()
    if not text:
        raise ValueError(f"{path}, line {line}: the {what} column {column!r} is empty; "
                         "expected a number (impute or drop missing values first)")
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{path}, line {line}: the {what} column {column!r} holds {text!r}, "
                         "not a number (encode categorical features as numbers first)") from None
    if not math.isfinite(value):
        raise ValueError(f"{path}, line {line}: the {what} column {column!r} holds {text!r}; "
                         "expected a finite number")
    return value


def read_csv(path):
    """A :class:`Table` from a CSV file with a header line (comma-separated, UTF-8).
    Blank lines are skipped; a row with a different number of fields is an error."""
    path = str(path)
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        try:
            header = next(reader, None)
            while header is not None and not any(cell.strip() for cell in header):
                header = next(reader, None)
            if header is None:
                raise ValueError(f"{path} is empty; expected a header line and data rows")
            columns = [cell.strip() for cell in header]
            if any(not c for c in columns):
                raise ValueError(f"{path}: the header has an empty column name "
                                 f"(column {columns.index('') + 1})")
            seen = set()
            for c in columns:
                if c in seen:
                    raise ValueError(f"{path}: the header names column {c!r} twice")
                seen.add(c)
            rows, lines = [], []
            for row in reader:
                if not any(cell.strip() for cell in row):
                    continue
                if len(row) != len(columns):
                    raise ValueError(f"{path}, line {reader.line_num}: {len(row)} fields, but "
                                     f"the header has {len(columns)}")
                rows.append(row)
                lines.append(reader.line_num)
        except (csv.Error, UnicodeDecodeError) as exc:
            raise ValueError(f"{path} is not a readable CSV file ({exc})") from None
    if not rows:
        raise ValueError(f"{path} has a header but no data rows")
    return Table(path, columns, rows, lines)


def _label(text):
    """A class label: the number for numeric text (``'1'`` and ``'1.0'`` are the same
    class), else the stripped text."""
    text = text.strip()
    try:
        value = float(text)
    except ValueError:
        return text
    if not math.isfinite(value):
        return text
    return int(value) if value.is_integer() else value


def infer_task(values):
    """``'classification'`` for text labels or few distinct whole numbers, else
    ``'regression'``."""
    labels = {_label(v) for v in values}
    if any(isinstance(v, str) for v in labels):
        return "classification"
    if all(isinstance(v, int) for v in labels) and len(labels) <= MAX_AUTO_CLASSES:
        return "classification"
    return "regression"


def _check_labels_present(table, name, values):
    for text, line in zip(values, table.lines):
        if not text.strip():
            raise ValueError(f"{table.path}, line {line}: the target column {name!r} is "
                             "empty; every row needs a label")


def fit_classes(table, name):
    """The sorted class labels of column ``name`` (numbers before text)."""
    values = table.strings(name)
    _check_labels_present(table, name, values)
    classes = sorted({_label(v) for v in values}, key=lambda c: (isinstance(c, str), c))
    if len(classes) < 2:
        raise ValueError(f"{table.path}: the target column {name!r} has a single class "
                         f"({classes[0]!r}); classification needs at least two")
    return classes


def encode(table, name, classes):
    """Column ``name`` as class indices into ``classes``; an unknown label is an error."""
    index = {c: i for i, c in enumerate(classes)}
    values = table.strings(name)
    _check_labels_present(table, name, values)
    out = np.empty(len(values), dtype=np.int64)
    for i, (text, line) in enumerate(zip(values, table.lines)):
        label = _label(text)
        if label not in index:
            raise ValueError(f"{table.path}, line {line}: label {text.strip()!r} of column "
                             f"{name!r} is not one of the model's classes {classes}")
        out[i] = index[label]
    return out


def standardize_fit(X):
    """Means and standard deviations of the columns; a constant column gets std 1."""
    mean = X.mean(axis=0)
    std = X.std(axis=0)
    std[~(std > 0)] = 1.0
    return mean, std
