"""One feature space per dataset: the id base (0 or 1) and the dense width, decided over every file.

SVMlight/LETOR files name features by sparse ids. Whether ids are zero- or one-based, and how
wide the dense matrix is, are properties of the dataset, not of a file: a test file that never
names feature 0, or never names the last feature, must be read into the same columns as the
training file. So the inputs are scanned first (`scan_space` in data_contracts.readers, one
streaming pass per file, dispatched to each format's scan; the results `merge`), the space is
decided once (`resolve_space`, here) and every reader is given it (`read_queries(..., space=...)`).
This module holds only the space's types and the decision: it imports no format reader.

Rules (also in docs/formats.md):
  - base: 0 when any file of the dataset uses feature id 0, else 1; a file's comment
    `# Column indices are zero-based` (or one-based, as scikit-learn writes it) decides it
    instead; `zero_based=True/False` (`--zero-based` / `--one-based`) overrides both. A file
    using id 0 in a one-based space is refused.
  - width: for sparse files, the largest id over all files minus the base plus one; for tables
    with one column per feature, the number of feature columns (their names are kept). Two
    inputs that disagree (a table of 3 feature columns and SVMlight ids up to 5) are refused
    with one line naming both.
  - ids above `max_feature_id` (`--max-feature-id`, default DEFAULT_MAX_FEATURE_ID) never
    widen the space: their query is quarantined as `feature_id_out_of_range` when read.
  - tables whose features are one list column are not scanned (that would read the whole
    file); their width stays None here and validation holds every query to the first valid
    query's width.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from data_contracts.errors import InputError

DEFAULT_MAX_FEATURE_ID = 100_000


@dataclass(frozen=True)
class FeatureSpace:
    """The dataset-wide feature space every reader maps features into.

    Attributes:
      base: the smallest feature id (0 or 1); sparse id `i` becomes dense column `i - base`.
      width: dense columns per document; None when only list-column tables were scanned (then
        the first valid query's width is the dataset's).
      names: feature names (column names of a one-column-per-feature table), else None.
    """

    base: int = 1
    width: int | None = None
    names: tuple | None = None

    def to_dict(self) -> dict:
        """As the manifest records it: {"base": B, "width": W, "names": [...] or None}."""
        return {"base": self.base, "width": self.width,
                "names": list(self.names) if self.names is not None else None}

    @classmethod
    def from_dict(cls, data: dict | None) -> "FeatureSpace | None":
        """The inverse of `to_dict` (None stays None)."""
        if data is None:
            return None
        names = data.get("names")
        return cls(base=int(data.get("base", 1)), width=data.get("width"),
                   names=tuple(names) if names is not None else None)


@dataclass
class SpaceStats:
    """What a scan found in one or more inputs; `merge` combines scans of several files.

    Attributes:
      low: smallest sparse feature id seen (None: no sparse id).
      high: largest sparse feature id seen at or below the limit (None: none).
      low_file: the file the smallest id came from (named when id 0 meets --one-based).
      high_file: the file the largest id came from.
      widths: dense width -> the first file with that many feature columns.
      names: feature column names of a one-column-per-feature table (the first one seen).
      declared_base: 0 or 1 when a file says so in a comment (scikit-learn's
        `dump_svmlight_file` writes `# Column indices are zero-based`), else None.
    """

    low: int | None = None
    high: int | None = None
    low_file: str | None = None
    high_file: str | None = None
    widths: dict = field(default_factory=dict)
    names: tuple | None = None
    declared_base: int | None = None

    def add_ids(self, low: int, high: int, path: str) -> None:
        """Records the smallest and largest sparse id of (part of) a file."""
        if self.low is None or low < self.low:
            self.low, self.low_file = low, path
        if self.high is None or high > self.high:
            self.high, self.high_file = high, path

    def merge(self, other: "SpaceStats") -> "SpaceStats":
        """A new SpaceStats covering both scans (smallest low, largest high, every width)."""
        out = SpaceStats(self.low, self.high, self.low_file, self.high_file, dict(self.widths),
                         self.names, self.declared_base)
        if out.declared_base is None:
            out.declared_base = other.declared_base
        if other.low is not None and (out.low is None or other.low < out.low):
            out.low, out.low_file = other.low, other.low_file
        if other.high is not None and (out.high is None or other.high > out.high):
            out.high, out.high_file = other.high, other.high_file
        for width, path in other.widths.items():
            out.widths.setdefault(width, path)
        if out.names is None:
            out.names = other.names
        return out


def resolve_space(stats: SpaceStats, zero_based: bool | None = None) -> FeatureSpace:
    """Decides the dataset's feature space from merged scans.

    Args:
      stats: the merged scan of every input of the dataset.
      zero_based: True/False to set the base (`--zero-based` / `--one-based`); None decides it:
        0 when any file uses feature id 0, else 1.

    Returns:
      The FeatureSpace every reader of the dataset is given.

    Raises:
      InputError: id 0 is used under `zero_based=False`, or inputs disagree on the width (one
        line naming both).
    """
    if zero_based is None and stats.declared_base is not None:
        base = stats.declared_base
    elif zero_based is None:
        base = 0 if stats.low == 0 else 1
    else:
        base = 0 if zero_based else 1
    if base == 1 and stats.low == 0:
        raise InputError(stats.low_file or "input", "feature id 0 is used, but the feature "
                         "space is one-based (--one-based); drop --one-based or use --zero-based")
    sparse_width = None if stats.high is None else stats.high - base + 1
    dense = sorted(stats.widths)
    if len(dense) > 1:
        a, b = dense[0], dense[-1]
        raise InputError(stats.widths[b], f"feature width mismatch: {b} feature columns here, "
                                          f"{a} in {stats.widths[a]}")
    width = dense[0] if dense else sparse_width
    if dense and sparse_width is not None and sparse_width != dense[0]:
        raise InputError(stats.high_file or "input",
                         f"feature width mismatch: feature ids up to {stats.high} (base {base}) "
                         f"make {sparse_width} features, but {stats.widths[dense[0]]} has "
                         f"{dense[0]} feature columns")
    return FeatureSpace(base=base, width=width, names=stats.names if dense else None)


__all__ = ["DEFAULT_MAX_FEATURE_ID", "FeatureSpace", "SpaceStats", "resolve_space"]
