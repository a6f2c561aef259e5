"""Data layer: readers per format, one dataset object, splits and samplers."""

from kgrec.data.dataset import KGDataset, Split
from kgrec.data.registry import DATASETS, download, load_dataset, resolve_data_dir
from kgrec.data.splits import make_split, per_user_split, ratio_split

__all__ = ["DATASETS", "KGDataset", "Split", "download", "load_dataset", "make_split",
           "per_user_split", "ratio_split", "resolve_data_dir"]
