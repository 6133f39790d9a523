"""The mini world: a small synthetic RefMatte generated on the fly, deterministic per index.

Scenes are composed by the same engine as real foregrounds (composition + expressions). Train
and test use disjoint random streams, disjoint texture families, disjoint background kinds and
photos, and test alone uses the held-out colour-category pairs listed in miniworld.json.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from clipmat.data.backgrounds import degrade, load_photo, photo_crop, procedural_background
from clipmat.data.colors import ColourNamer
from clipmat.data.composition import (
    RELATIONS,
    SINGLE,
    Foreground,
    Scene,
    compose_scene,
    crop_to_alpha,
)
from clipmat.data.expressions import ExpressionWriter
from clipmat.data.samples import check_setting, make_sample
from clipmat.data.shapes import render_entity

CONFIG_PATH = Path(__file__).with_name("miniworld.json")
SPLITS = {"train": 0, "test": 1}
SHARED_PROB = 0.5  # chance that two entities of a scene share a category
HELDOUT_PROB = 0.5  # test only: chance that an entity takes a held-out colour of its category
RENDER_FRACTION = 0.75  # entities are drawn at this fraction of the canvas side, then resized
COLOUR_JITTER = 10.0
COLOUR_TRIES = 4


def load_world_config(path: str | Path | None = None) -> dict[str, Any]:
    """Read miniworld.json (categories, palette, held-out pairs, textures, backgrounds)."""
    return json.loads(Path(path or CONFIG_PATH).read_text())


class MiniWorld:
    """Procedural RefMatte scenes, generated on demand.

    Args:
        split: "train" or "test".
        size: canvas side in pixels (square scenes).
        seed: world seed; scene(i) depends only on (split, seed, i).
        shared_prob: chance that a scene holds two entities of one category (different
            colours); those entities are left out of the keyword setting.
        config: a world config dict (load_world_config()) to override the packaged one.
    """

    def __init__(
        self,
        split: str = "train",
        size: int = 128,
        seed: int = 0,
        *,
        shared_prob: float = SHARED_PROB,
        config: dict[str, Any] | None = None,
    ) -> None:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {sorted(SPLITS)}, got {split!r}")
        if size < 32:
            raise ValueError(f"size must be at least 32 pixels, got {size}")
        self.split, self.size, self.seed = split, int(size), int(seed)
        self.shared_prob = float(shared_prob)
        self.config = config or load_world_config()
        self.categories = self.config["categories"]
        self.palette = {k: np.asarray(v, np.float32) for k, v in self.config["palette"].items()}
        self.namer = ColourNamer(self.config["palette"])
        self.writer = ExpressionWriter(
            synonyms={c["keyword"]: c["synonyms"] for c in self.categories}
        )
        self._photos: dict[str, np.ndarray] = {}

    # ---------------------------------------------------------------- pieces
    def _rng(self, i: int, stream: int = 0) -> np.random.Generator:
        return np.random.default_rng([self.seed, SPLITS[self.split], int(i), stream])

    def allowed_colours(self, keyword: str, heldout: bool = False) -> list[str]:
        """Colours an entity of this category may take (held-out ones only when asked)."""
        held = self.config["heldout_colours"].get(keyword, [])
        if heldout:
            return list(held)
        return [c for c in self.palette if c not in held]

    def entity(
        self, category: dict[str, Any], colour: str, rng: np.random.Generator, name: str = ""
    ) -> Foreground:
        """Render one entity of a category in a named colour.

        The colour attribute is computed from the pixels; the entity is redrawn (up to 4 times)
        until the computed name equals the requested one.
        """
        protos = self.palette[colour]
        side = max(16, int(self.size * RENDER_FRACTION))
        textures = self.config["textures"][self.split]
        for _ in range(COLOUR_TRIES):
            base = protos[rng.integers(len(protos))] + rng.normal(0, COLOUR_JITTER, 3)
            rgb, alpha = render_entity(
                category["renderer"], side, np.clip(base, 0, 255), str(rng.choice(textures)), rng
            )
            rgb, alpha = crop_to_alpha(rgb, alpha)
            named = self.namer(rgb, alpha, rng)
            if named == colour:
                break
        attrs = {"colour": named, "salient": bool(category["salient"])}
        return Foreground(rgb, alpha, category["keyword"], name=name, attributes=attrs)

    def background(self, rng: np.random.Generator) -> tuple[np.ndarray, str]:
        """One background for this split: (H, W, 3) uint8 and a short name."""
        hw = (self.size, self.size)
        if rng.random() < float(self.config["photo_probability"]):
            name = str(rng.choice(self.config["photo_backgrounds"][self.split]))
            if name not in self._photos:
                self._photos[name] = load_photo(name)
            image = photo_crop(self._photos[name], hw, rng)
        else:
            name = str(rng.choice(self.config["procedural_backgrounds"][self.split]))
            image = procedural_background(name, hw, rng)
        return degrade(image, rng), name

    def _pick(self, rng: np.random.Generator, k: int, shared: bool) -> list[tuple[dict, str]]:
        n_cat = len(self.categories)
        if shared:
            cats = [int(rng.integers(n_cat))] * 2
            if k == 3:
                cats.append(int(rng.choice([c for c in range(n_cat) if c != cats[0]])))
            cats = [cats[j] for j in rng.permutation(k)]
        else:
            cats = [int(c) for c in rng.choice(n_cat, size=k, replace=False)]
        picked: list[tuple[dict, str]] = []
        for c in cats:
            cat = self.categories[c]
            heldout = self.split == "test" and rng.random() < HELDOUT_PROB
            options = self.allowed_colours(cat["keyword"], heldout)
            used = [col for cc, col in picked if cc is cat]
            options = [o for o in options if o not in used] or options
            picked.append((cat, str(rng.choice(options))))
        return picked

    # ---------------------------------------------------------------- scenes
    def scene(self, i: int, allow_shared: bool = True) -> Scene:
        """Scene number i: 2 or 3 annotated entities, deterministic for (split, seed, i).

        Args:
            i: scene index.
            allow_shared: when False, the scene never holds two entities of one category (every
                keyword is unique); such a variant of scene i is named with a "d" suffix.
        """
        rng = self._rng(i)
        relation = str(rng.choice(RELATIONS))
        k = 2 if relation == "front/behind" else int(rng.integers(2, 4))
        shared = bool(rng.random() < self.shared_prob)
        name = f"mw_{self.split}_{self.seed}_{i:07d}"
        if shared and not allow_shared:
            shared, name = False, name + "d"
        fgs = [
            self.entity(cat, colour, rng, name=f"{name}:{j}")
            for j, (cat, colour) in enumerate(self._pick(rng, k, shared))
        ]
        bg, bg_name = self.background(rng)
        scene = compose_scene(fgs, bg, relation, rng, colour_namer=self.namer)
        scene.image_name, scene.background_name = name, bg_name
        return self.writer.annotate(scene, rng)

    def sample(self, i: int, setting: str = "expression", expression: int | None = None) -> dict:
        """One training sample of scene i: a random entity and one of its texts.

        In the keyword setting the scene is drawn with distinct categories
        (scene(i, allow_shared=False)), so the keyword names one entity.

        Args:
            i: scene index.
            setting: "keyword", "expression", or "mixed" (keyword or expression, half each).
            expression: which of the 4 expressions; random when None.

        Returns:
            The sample dict (see clipmat.data.samples.make_sample).
        """
        rng = self._rng(i, stream=1)
        if setting == "mixed":
            setting = "keyword" if rng.random() < 0.5 else "expression"
        check_setting(setting)
        scene = self.scene(i, allow_shared=setting != "keyword")
        return make_sample(scene, rng, setting, expression)

    def caption_pair(
        self, i: int, mode: str = "entity", keyword: bool = False
    ) -> tuple[np.ndarray, str]:
        """(image, caption) for contrastive pretraining.

        Args:
            i: index; pairs use their own random stream, separate from scene(i).
            mode: "entity" (one entity on a background, its basic expression) or "scene"
                (scene(i) with the basic expressions of all entities joined by "and").
            keyword: name each entity by its bare keyword ("ball") instead of its basic
                expression ("the red ball"), so that category names alone are learnt too.

        Returns:
            (size, size, 3) uint8 image and a caption string.
        """
        if mode == "scene":
            scene = self.scene(i)
            return scene.image, " and ".join(
                e.keyword if keyword else e.expressions[0] for e in scene.entities
            )
        if mode != "entity":
            raise ValueError(f"mode must be 'entity' or 'scene', got {mode!r}")
        rng = self._rng(i, stream=2)
        cat, colour = self._pick(rng, 1, False)[0]
        fg = self.entity(cat, colour, rng, name=f"caption_{self.split}_{i}")
        bg, _ = self.background(rng)
        scene = compose_scene([fg], bg, SINGLE, rng, colour_namer=self.namer)
        self.writer.annotate(scene, rng)
        entity = scene.entities[0]
        return scene.image, entity.keyword if keyword else entity.expressions[0]
