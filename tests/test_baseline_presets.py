"""The issue-15 baselines ship presets (each trains one epoch in tests/test_presets.py)."""

from kgrec.presets import list_presets


def test_every_new_model_has_a_preset():
    names = set(list_presets())
    assert {"ripplenet-lastfm", "ripplenet-book", "kgat-lastfm", "kgat-book",
            "kgat-amazon-book", "kgat-yelp2018", "ncf-lastfm", "nfm-lastfm",
            "widedeep-lastfm", "enmf-lastfm"} <= names
