"""The one table of weights and the views derived from it: predictor names, the "auto" order,
other names that resolve, and the "auto" policy they drive."""

import dataclasses

import pytest

import clipmat
from clipmat.predictors.loading import MiniWorldOnlyWarning, auto_choice, load_predictor
from clipmat.pretrained import registry

# The names users and older code rely on (before the table was one table).
AUTO_ORDER = ["clipmat-vitl14", "clipmat-vitb16", "zeroshot-vitb16", "mini-world"]
OLD_ALIASES = {
    "clipmat-vitb16": "clipmat-vitb16.refmatte",
    "clipmat-vitl14": "clipmat-vitl14.refmatte",
    "clip-vitb16-openai": "ViT-B-16.openai",
    "clip-vitl14-openai": "ViT-L-14.openai",
    "mini-world": "clipmat-mini.miniworld",
    "zeroshot-vitb16": "ViT-B-16.openai",
}


def table_problems() -> list[str]:
    """What is inconsistent in ``registry.PRETRAINED`` and its derived views ([] if nothing)."""
    entries = list(registry.PRETRAINED.values())
    known_contents = (registry.CLIPMAT, registry.CLIP)
    problems = [
        f"{k!r} is filed as {s.name!r}" for k, s in registry.PRETRAINED.items() if k != s.name
    ]
    problems += [f"{s.name}: {s.contents!r}" for s in entries if s.contents not in known_contents]
    return problems + _name_problems(entries) + _auto_problems(entries)


def _name_problems(entries: list[registry.WeightSpec]) -> list[str]:
    """Predictor names and older names: each names one entry, none shadows a key, and the
    lookups (predictor_names, predictor_weights, canonical_name) agree with the table."""
    predictors = [s.predictor for s in entries if s.predictor is not None]
    problems = []
    if registry.predictor_names() != predictors:
        problems.append(f"predictor_names() {registry.predictor_names()} != {predictors}")
    others = [n for s in entries for n in (s.predictor, *s.aliases) if n is not None]
    problems += [f"{n!r} names two entries" for n in set(others) if others.count(n) > 1]
    problems += [f"{n!r} shadows a key" for n in set(others) & set(registry.PRETRAINED)]
    for spec in entries:
        for name in (spec.predictor, *spec.aliases):
            if name is not None and registry.canonical_name(name) != spec.name:
                problems.append(f"{name!r} does not resolve to {spec.name!r}")
    for name in predictors:
        if registry.predictor_weights(name).name != registry.canonical_name(name):
            problems.append(f"predictor {name!r} reads other weights than its name resolves to")
    return problems


def _auto_problems(entries: list[registry.WeightSpec]) -> list[str]:
    """The "auto" order: distinct ranks, each on a predictor, and auto_order() follows them."""
    ranked = sorted((s for s in entries if s.auto_rank is not None), key=lambda s: s.auto_rank)
    ranks = [s.auto_rank for s in ranked]
    problems = [f"entries share an auto_rank: {ranks}"] if len(set(ranks)) != len(ranks) else []
    problems += [f"{s.name}: auto_rank but no predictor" for s in ranked if s.predictor is None]
    if registry.auto_order() != [s.predictor for s in ranked]:
        problems.append(f"auto_order() {registry.auto_order()} does not follow the ranks")
    return problems


def test_table_and_its_views_agree():
    assert table_problems() == []
    assert [s.name for s in clipmat.list_predictors()] == registry.predictor_names()


def test_names_resolve_as_before():
    assert registry.auto_order() == AUTO_ORDER
    assert registry.predictor_names() == AUTO_ORDER
    assert registry.alias_map() == OLD_ALIASES
    for name, key in OLD_ALIASES.items():
        assert registry.canonical_name(name) == key == registry.get_weight_spec(name).name
    assert registry.predictor_weights("clip-vitb16-openai") is None  # an older name, no predictor
    assert registry.predictor_weights("ViT-L-14.openai") is None  # a key, no predictor


def _entry(key: str, **changes) -> tuple[str, registry.WeightSpec]:
    return key, dataclasses.replace(registry.PRETRAINED[key], **changes)


BROKEN_TABLES = {
    "alias shadows a key": [_entry("ViT-L-14.openai", aliases=("ViT-B-16.openai",))],
    "alias used twice": [_entry("ViT-L-14.openai", aliases=("clip-vitb16-openai",))],
    "predictor named like an alias": [_entry("ViT-L-14.openai", predictor="clip-vitb16-openai")],
    "predictor name used twice": [_entry("ViT-L-14.openai", predictor="zeroshot-vitb16")],
    "auto rank shared": [_entry("ViT-L-14.openai", predictor="zeroshot-vitl14", auto_rank=2)],
    "auto rank, no predictor": [_entry("ViT-L-14.openai", auto_rank=4)],
    "unknown contents": [_entry("ViT-L-14.openai", contents="clip+clipmat")],
    "filed under another key": [("ViT-L-14.laion", registry.PRETRAINED["ViT-L-14.openai"])],
}


@pytest.mark.parametrize("broken", list(BROKEN_TABLES))
def test_table_check_finds_each_kind_of_inconsistency(broken, monkeypatch):
    for key, spec in BROKEN_TABLES[broken]:
        monkeypatch.setitem(registry.PRETRAINED, key, spec)
    assert table_problems(), f"{broken} went unnoticed"


def test_auto_follows_the_ranks(isolated):
    assert auto_choice() == "mini-world"  # offline, nothing but the bundled weights
    with pytest.warns(MiniWorldOnlyWarning):
        assert load_predictor("auto", device="cpu").name == "mini-world"
    trained = registry.get_weight_spec("clipmat-vitb16")
    clipmat.save_model(clipmat.create_model("clipmat-tiny"), isolated / trained.filename)
    assert auto_choice() == "clipmat-vitb16"
