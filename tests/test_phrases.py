"""A phrase is a keyword when it is a name, in one word or several, and an expression when it
says which entity: a relation, position, attribute, clause, possessive, number or comma."""

from __future__ import annotations

import pytest

from clipmat.evaluation.evaluate import miniworld_items
from clipmat.phrases import MAX_NAME_WORDS, content_words, expression_cues, infer_setting


@pytest.mark.parametrize(
    "text",
    [
        "the cat",
        "cat",
        "the teddy bear",
        "teddy bear",
        "the plastic bag",
        "a fur ball",
        "the soap bubble",
        "hot air balloon",
        "the trash can",
        "the orange",  # one word: a name whatever it is
        "the left",
        "  The   Crescent Moon ",
        "that dog",  # "that" first is a determiner
    ],
)
def test_names_are_keywords(text):
    assert infer_setting(text) == "keyword", expression_cues(text)


@pytest.mark.parametrize(
    ("text", "cue"),
    [
        ("the cat on the left", "on"),
        ("the man in front of the car", "in"),
        ("the dog beside the tree", "beside"),
        ("the bag behind the chair", "behind"),
        ("the star left of the circle", "left"),
        ("the top flower", "top"),
        ("the red star", "red"),
        ("the grey ball", "grey"),
        ("the big dog", "big"),
        ("the wooden table", "wooden"),
        ("the striped cat", "striped"),
        ("the non-salient net", "non-salient"),
        ("the light-blue sky", "light-blue"),
        ("the cat that is sleeping", "that"),
        ("the crescent which is orange", "which"),
        ("the man who is smiling", "who"),
        ("the girl wearing a hat", "wearing"),
        ("the dog holding a stick", "holding"),
        ("the cat with white and black fur", "with"),
        ("the man's hat", "man's"),
        ("the 2nd cat", "2nd"),
    ],
)
def test_expressions_and_what_makes_them(text, cue):
    assert infer_setting(text) == "expression"
    assert cue in expression_cues(text)


def test_commas_long_phrases_and_determiners():
    assert expression_cues("the man, the dog") == [","]
    assert infer_setting("the cat; the dog") == "expression"
    long_name = " ".join(["word"] * (MAX_NAME_WORDS + 1))
    assert expression_cues(long_name) == ["length"]
    assert infer_setting(" ".join(["word"] * MAX_NAME_WORDS)) == "keyword"
    assert content_words("The Red   Star!") == ["red", "star"]
    assert content_words("their cat's toy") == ["cat's", "toy"]
    assert infer_setting("") == "keyword" and content_words("the") == []


def test_the_mini_world_keywords_and_expressions_are_told_apart():
    """On held-out mini-world scenes every keyword sample is read as a keyword ("fur ball" and
    "plastic bag" included) and every expression sample as an expression."""
    keywords = [t for _, pairs in miniworld_items("keyword", 40) for t, _ in pairs]
    expressions = [t for _, pairs in miniworld_items("expression", 40) for t, _ in pairs]
    assert {"fur ball", "plastic bag"} <= set(keywords)
    assert [t for t in keywords if infer_setting(t) != "keyword"] == []
    assert [t for t in expressions if infer_setting(t) != "expression"] == []
