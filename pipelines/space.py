"""The dataset's feature space: a pre-pass that scans the inputs in parallel (`DatasetSpace`),
merges what the scans saw in input order and resolves one FeatureSpace the readers of both
passes share (None: each file decides its own).
"""
from __future__ import annotations

import apache_beam as beam

from data_contracts.readers import resolve_space, scan_space
from pipelines.config import CurriculumConfig


def scan_units(config: CurriculumConfig, splits: list) -> list[tuple]:
    """What the space scan reads, in input order: `(position, path, byte_range)`.

    An SVMlight file split by byte range is scanned split by split (in parallel: the scan is a
    full pass over the file); any other input is scanned whole, once (a table's scan reads only
    its schema).
    """
    units, whole = [], set()
    for split in splits:
        if split.byte_range:
            units.append((split.position, split.path, (split.start, split.end)))
        elif split.input_index not in whole:
            whole.add(split.input_index)
            units.append(((split.input_index, 0, 0), config.inputs[split.input_index], None))
    return sorted(units, key=lambda unit: unit[0])


def scan_input(unit: tuple, config: CurriculumConfig):
    """(position, what one scan unit says about the feature space: the readers' `scan_space`)."""
    position, path, byte_range = unit
    return position, scan_space(path, config.input_format, column_map=config.column_map,
                                max_feature_id=config.max_feature_id, byte_range=byte_range)


class MergeSpaceStats(beam.CombineFn):
    """Merges the scans' SpaceStats in input order (None: no dataset-wide space).

    The order decides which file a message names and whose feature names are kept, so the
    (small: one per scan unit) accumulator keeps every scan with its position and merges them
    sorted, whatever order the runner combines in.
    """

    def create_accumulator(self):
        return []

    def add_input(self, acc, positioned):
        return acc + [positioned]

    def merge_accumulators(self, accs):
        return [item for acc in accs for item in acc]

    def extract_output(self, acc):
        out = None
        for _, stats in sorted(acc, key=lambda item: item[0]):
            if stats is not None:
                out = stats if out is None else out.merge(stats)
        return out


def resolve_input_space(stats, config: CurriculumConfig):
    """The dataset's FeatureSpace from merged stats (None stays None)."""
    if stats is None:
        return None
    return resolve_space(stats, config.zero_based)


class DatasetSpace(beam.PTransform):
    """A pre-pass: the scan units (`scan_units`) scanned in parallel, merged in input order,
    resolved: a singleton FeatureSpace (or None)."""

    def __init__(self, config: CurriculumConfig, splits: list):
        super().__init__()
        self.config, self.splits = config, splits

    def expand(self, pbegin):
        cfg = self.config
        return (pbegin | "Inputs" >> beam.Create(scan_units(cfg, self.splits))
                | "ScanSpace" >> beam.Map(scan_input, cfg)
                | "MergeSpace" >> beam.CombineGlobally(MergeSpaceStats())
                | "ResolveSpace" >> beam.Map(resolve_input_space, cfg))


def space_dict(space) -> dict | None:
    """A FeatureSpace as the manifest records it, or None."""
    if space is None:
        return None
    return {"base": space.base, "width": space.width,
            "names": list(space.names) if space.names is not None else None}
