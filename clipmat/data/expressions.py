"""Generation engine, language part: keyword and four expressions per entity from data templates.

Every expression is built from a structured description (category word, attributes, and an
optional absolute position or relation to another entity). An expression is kept only if its
description matches exactly one entity of the image, so every expression is unique within its
image. The four expressions are, in order: basic, absolute position, relative position, and a
second basic form (the slot RefMatte-RW100 uses for its free expression).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from clipmat.data.composition import SINGLE, Scene, SceneEntity

TEMPLATES_PATH = Path(__file__).with_name("templates.json")
ATTRIBUTE_KEYS = ("colour", "salient", "transparent")
COLOUR_PROB = 0.75  # chance that a basic expression names the colour
NEAR_PROB = 0.3  # chance of "beside/next to/close to" when two entities are adjacent
BASIC_TRIES = 12
RELATIVE_TRIES = 8
_LR = re.compile(r"\b(left|right)(most)?\b")


def swap_left_right(text: str) -> str:
    """Swap the words left/right (and leftmost/rightmost), for horizontal-flip augmentation."""
    return _LR.sub(
        lambda m: ("right" if m.group(1) == "left" else "left") + (m.group(2) or ""), text
    )


def load_templates(path: str | Path | None = None) -> dict[str, Any]:
    """Read the expression templates (JSON); the packaged templates.json by default."""
    path = Path(path) if path is not None else TEMPLATES_PATH
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: malformed JSON ({err})") from err


@dataclass
class _Desc:
    word: str
    attrs: tuple[str, ...]
    position: tuple[Any, ...] | None = None  # ("abs", rank) or ("rel", kind, ref)


class ExpressionWriter:
    """Writes the keyword and four unique expressions of every entity of a scene.

    Args:
        templates: the template dict (load_templates()).
        synonyms: extra category -> words (the category itself is always a word); merged over
            the templates' own synonym table.
    """

    def __init__(
        self,
        templates: Mapping[str, Any] | None = None,
        synonyms: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        self.t = dict(templates) if templates is not None else load_templates()
        table = {k: list(v) for k, v in self.t.get("synonyms", {}).items()}
        for cat, words in (synonyms or {}).items():
            table[cat] = list(words)
        self.synonyms = table

    def words(self, category: str) -> list[str]:
        """Words that may name the category (canonical name first)."""
        words = self.synonyms.get(category, [])
        return [category] + [w for w in words if w != category]

    def denotes(self, word: str, category: str) -> bool:
        """Whether a category word can refer to an entity of that category."""
        return word in self.words(category)

    # ---------------------------------------------------------------- geometry
    @staticmethod
    def _axis_key(scene: Scene, e: SceneEntity) -> float:
        if scene.relation == "top/bottom":
            return e.centre[1]
        if scene.relation == "front/behind":
            return float(e.depth)
        return e.centre[0]

    def _rank(self, scene: Scene, i: int) -> str:
        if scene.relation == SINGLE:
            x = scene.entities[i].centre[0] / scene.image.shape[1]
            return "first" if x < 1 / 3 else ("last" if x > 2 / 3 else "middle")
        keys = [self._axis_key(scene, e) for e in scene.entities]
        order = sorted(range(len(keys)), key=lambda j: keys[j])
        pos = order.index(i)
        return "first" if pos == 0 else ("last" if pos == len(keys) - 1 else "middle")

    def relation_kind(self, scene: Scene, i: int, j: int) -> str:
        """Directional relation of entity i to entity j from box centres or depth."""
        a, b = scene.entities[i], scene.entities[j]
        if scene.relation == "top/bottom":
            return "above" if a.centre[1] < b.centre[1] else "below"
        if scene.relation == "front/behind":
            return "front" if a.depth > b.depth else "behind"
        return "left" if a.centre[0] < b.centre[0] else "right"

    def _adjacent(self, scene: Scene, i: int, j: int) -> bool:
        keys = [self._axis_key(scene, e) for e in scene.entities]
        order = sorted(range(len(keys)), key=lambda k: keys[k])
        return abs(order.index(i) - order.index(j)) == 1

    # ---------------------------------------------------------------- matching
    def _matches(self, scene: Scene, desc: _Desc, j: int, target: int) -> bool:
        e, t = scene.entities[j], scene.entities[target]
        if not self.denotes(desc.word, e.category):
            return False
        if any(e.attributes.get(k) != t.attributes.get(k) for k in desc.attrs):
            return False
        if desc.position is None:
            return True
        if desc.position[0] == "abs":
            return self._rank(scene, j) == desc.position[1]
        kind, ref = desc.position[1], desc.position[2]
        if j == ref:
            return False
        if kind == "near":
            return self._adjacent(scene, j, ref)
        return self.relation_kind(scene, j, ref) == kind

    def _unique(self, scene: Scene, desc: _Desc, target: int) -> bool:
        hits = [j for j in range(len(scene.entities)) if self._matches(scene, desc, j, target)]
        return hits == [target]

    # ---------------------------------------------------------------- wording
    def _attr_word(self, e: SceneEntity, key: str) -> str:
        words = self.t["attribute_words"]
        value = e.attributes.get(key)
        if key == "colour":
            return str(value)
        return words[key] if value else words["non_" + key]

    @staticmethod
    def _join(words: Sequence[str]) -> str:
        if len(words) <= 1:
            return "".join(words)
        return ", ".join(words[:-1]) + " and " + words[-1]

    def _basic_text(self, e: SceneEntity, desc: _Desc, form: str, rng: np.random.Generator) -> str:
        attrs = [self._attr_word(e, k) for k in desc.attrs]
        if not attrs:
            return f"the {desc.word}"
        template = str(rng.choice(self.t[form]))
        return template.format(attrs=self._join(attrs), cat=desc.word)

    def _pick_attrs(self, e: SceneEntity, n: int, rng: np.random.Generator) -> tuple[str, ...]:
        available = [k for k in ATTRIBUTE_KEYS if e.attributes.get(k) is not None]
        if not available or n == 0:
            return ()
        chosen: list[str] = []
        if "colour" in available and rng.random() < COLOUR_PROB:
            chosen.append("colour")
        rest = [k for k in available if k not in chosen]
        rng.shuffle(rest)
        chosen += rest[: max(0, n - len(chosen))]
        order = list(rng.permutation(len(chosen)))
        return tuple(chosen[o] for o in order)

    def _human_text(self, e: SceneEntity, word: str, rng: np.random.Generator) -> str | None:
        cloth = e.attributes.get("clothing")
        if not cloth:
            return None
        cloth_text = " ".join(cloth) if isinstance(cloth, list | tuple) else str(cloth)
        gender = str(e.attributes.get("gender", "")).strip()
        templates = [t for t in self.t["basic_human"] if gender or "{gender}" not in t]
        text = str(rng.choice(templates)).format(gender=gender, cat=word, cloth=cloth_text)
        return " ".join(text.split())

    def basic(
        self, scene: Scene, i: int, rng: np.random.Generator, form: str = "basic_a"
    ) -> tuple[str, _Desc]:
        """A basic expression unique in the scene; falls back to adding the absolute position."""
        e = scene.entities[i]
        for attempt in range(BASIC_TRIES):
            late = attempt >= BASIC_TRIES // 2
            word = e.category if late else str(rng.choice(self.words(e.category)))
            n = 3 if late else int(rng.integers(1, 3))
            desc = _Desc(word, self._pick_attrs(e, n, rng))
            if late and "colour" in e.attributes and "colour" not in desc.attrs:
                desc.attrs = ("colour",) + desc.attrs
            if self._unique(scene, desc, i):
                return self._basic_text(e, desc, form, rng), desc
        desc = _Desc(e.category, tuple(k for k in ATTRIBUTE_KEYS if k in e.attributes))
        head = self._basic_text(e, desc, form, rng)
        return self._absolute_text(scene, i, head, rng), _Desc(
            desc.word, desc.attrs, ("abs", self._rank(scene, i))
        )

    def _short_head(self, e: SceneEntity, rng: np.random.Generator, n_attrs: int) -> _Desc:
        return _Desc(str(rng.choice(self.words(e.category))), self._pick_attrs(e, n_attrs, rng))

    def _absolute_text(self, scene: Scene, i: int, head: str, rng: np.random.Generator) -> str:
        relation = "left/right" if scene.relation == SINGLE else scene.relation
        where = str(rng.choice(self.t["absolute"][relation][self._rank(scene, i)]))
        form = str(rng.choice(self.t["absolute_form"]))
        return form.format(head=head, where=where, picture=rng.choice(self.t["picture_words"]))

    def absolute(self, scene: Scene, i: int, rng: np.random.Generator) -> tuple[str, dict]:
        """Short head plus the absolute position (rank along the relation axis)."""
        e = scene.entities[i]
        rank = self._rank(scene, i)
        for attempt in range(RELATIVE_TRIES):
            desc = self._short_head(e, rng, int(rng.integers(0, 2)) + attempt // 3)
            desc.position = ("abs", rank)
            if self._unique(scene, desc, i):
                break
        else:
            text, desc = self.basic(scene, i, rng)
            if desc.position is not None:
                return text, {"type": "absolute", "rank": rank}
        head = self._basic_text(e, desc, "basic_a", rng)
        return self._absolute_text(scene, i, head, rng), {"type": "absolute", "rank": rank}

    def relative(self, scene: Scene, i: int, rng: np.random.Generator) -> tuple[str, dict]:
        """Short head, a relation word from the geometry, and a unique description of another."""
        e = scene.entities[i]
        others = [j for j in range(len(scene.entities)) if j != i]
        ref = int(rng.choice(others))
        kind = self.relation_kind(scene, i, ref)
        if scene.relation != "front/behind" and self._adjacent(scene, i, ref):
            kind = "near" if rng.random() < NEAR_PROB else kind
        other, _ = self.basic(scene, ref, rng)
        for attempt in range(RELATIVE_TRIES):
            desc = self._short_head(e, rng, int(rng.integers(0, 2)) + attempt // 3)
            desc.position = ("rel", kind, ref)
            if self._unique(scene, desc, i):
                head = self._basic_text(e, desc, "basic_a", rng)
                break
        else:
            head, _ = self.basic(scene, i, rng)
        rel = str(rng.choice(self.t["relative"][kind]))
        text = str(rng.choice(self.t["relative_form"])).format(head=head, rel=rel, other=other)
        return text, {"type": "relative", "relation": kind, "reference": ref}

    def annotate(self, scene: Scene, rng: np.random.Generator) -> Scene:
        """Fill keyword, expressions and phrases of every entity (in place; returns the scene).

        Raises:
            RuntimeError: if two entities end up with the same expression (a template bug).
        """
        for i, e in enumerate(scene.entities):
            e.keyword = e.category
            basic, _ = self.basic(scene, i, rng)
            absolute, abs_meta = self.absolute(scene, i, rng)
            if len(scene.entities) > 1:
                relative, rel_meta = self.relative(scene, i, rng)
            else:
                relative, rel_meta = self.basic(scene, i, rng, form="basic_b")[0], {"type": "basic"}
            human = self._human_text(e, str(rng.choice(self.words(e.category))), rng)
            if human is not None and self._unique(scene, _Desc(e.category, ("clothing",)), i):
                second = human
            else:
                second, _ = self.basic(scene, i, rng, form="basic_b")
            e.expressions = [basic, absolute, relative, second]
            e.phrases = [{"type": "basic"}, abs_meta, rel_meta, {"type": "basic"}]
        seen: dict[str, int] = {}
        for i, e in enumerate(scene.entities):
            for text in e.expressions:
                if seen.setdefault(text, i) != i:
                    raise RuntimeError(f"expression {text!r} names two entities of one image")
        return scene
