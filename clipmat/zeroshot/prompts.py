"""Prompts of the zero-shot predictor: templates, background words, phrase unions, positions."""

from __future__ import annotations

import re

import torch

from clipmat.model.backbone import bpe_encode, special_token_ids

# Each phrase is embedded in every template and the normalised embeddings are averaged (the
# prompt ensembling of CLIP's zero-shot classifiers). "{}" is the phrase without its article.
PROMPT_TEMPLATES = (
    "{}",
    "the {}",
    "a photo of the {}.",
    "a photo of a {}.",
    "a cropped photo of the {}.",
    "a close-up photo of the {}.",
    "a bright photo of the {}.",
    "there is a {} in the scene.",
)
# Stuff classes that compete with the phrase for every patch (a patch they win is background).
BACKGROUND_PROMPTS = (
    "background",
    "wall",
    "floor",
    "ground",
    "sky",
    "texture",
    "pattern",
    "table",
)
_ARTICLE = re.compile(r"^(the|a|an)\s+", re.IGNORECASE)
_UNION_SPLIT = re.compile(r"\s*[,;]\s*")
# Absolute-position words and the axis they sort on: (axis 0 = x, 1 = y, sign: -1 smallest).
_POSITIONS = {
    "left": (0, -1),
    "leftmost": (0, -1),
    "right": (0, 1),
    "rightmost": (0, 1),
    "top": (1, -1),
    "upper": (1, -1),
    "topmost": (1, -1),
    "bottom": (1, 1),
    "lower": (1, 1),
    "bottommost": (1, 1),
}
# Words that make a position relative to another entity; then no absolute position is used.
_RELATIONAL = re.compile(
    r"\b(of the|of a|than|beside|next to|above|below|under|over|behind|in front of)\b",
    re.IGNORECASE,
)
_IMAGE_PART = re.compile(r"\b(part|side|corner|half|area) of the (image|picture|photo|scene)\b")


def strip_article(phrase: str) -> str:
    """ "the red star" -> "red star" (one leading article removed)."""
    return _ARTICLE.sub("", phrase.strip(), count=1)


def split_union(phrase: str) -> list[str]:
    """Split a phrase union at commas and semicolons: "the man, the dog" -> two parts.

    "and" is not a separator ("the cat with white and black fur" is one entity).

    Raises:
        ValueError: when no part is left.
    """
    parts = [p for p in _UNION_SPLIT.split(phrase.strip()) if p]
    if not parts:
        raise ValueError(
            f"phrase {phrase!r} holds no words; give e.g. 'the cat' or 'the man, the dog'"
        )
    return parts


def position_preference(phrase: str) -> tuple[int, int] | None:
    """The absolute position a phrase asks for, as (axis, sign), or None.

    "the star on the left" -> (0, -1): prefer the smallest x (axis 0 is x, 1 is y). Phrases
    that place the entity relative to another one ("the star left of the circle", "the cat above
    the dog") give None.
    """
    text = _IMAGE_PART.sub(" ", phrase.lower())
    if _RELATIONAL.search(text):
        return None
    for word in re.findall(r"[a-z]+", text):
        if word in _POSITIONS:
            return _POSITIONS[word]
    return None


def tokenize(texts: list[str], context_length: int) -> torch.Tensor:
    """CLIP token ids, start and end tokens added, cut to the context and zero-padded.

    Returns:
        (N, context_length) int64.
    """
    sot, eot = special_token_ids()
    out = torch.zeros(len(texts), context_length, dtype=torch.long)
    for i, text in enumerate(texts):
        ids = [sot, *bpe_encode(text)[: context_length - 2], eot]
        out[i, : len(ids)] = torch.tensor(ids)
    return out


def expand_templates(phrase: str, templates: tuple[str, ...]) -> list[str]:
    """The phrase filled into every template (without its leading article)."""
    core = strip_article(phrase) or phrase.strip()
    return [t.format(core) for t in templates]
