"""What the app tells the user, as Markdown: the predictor, its licence, each matte's status."""

from __future__ import annotations

import re

from clipmat_app.mattes import STRIP_SIZE, Matte
from clipmat_app.pool import RANDOM_TINY, PredictorPool


def loading_text(name: str) -> str:
    """The progress line while predictor ``name`` loads (its first use may download)."""
    return f"Loading {name} (its first use may download weights)"


def matting_text(phrase: str, name: str, boxed: bool) -> str:
    """The progress line while a matte is computed: the phrase and predictor ``name``, or with
    no phrase, the box (``boxed``) or the clicks alone."""
    if phrase:
        return f"Matting '{phrase}' with {name}"
    return "Matting the box" if boxed else "Matting the clicks"


def no_predictor_text(pool: PredictorPool) -> str:
    """Why matting is off: every predictor that cannot run and its reason."""
    lines = [f"- **{c.name}**: {c.reason}" for c in pool.choices() if not c.available]
    return (
        "**No predictor can run here.** Matting is off until one has its weights:\n\n"
        + "\n".join(lines)
        + f"\n\nFor interface work, start with `python app.py --predictor {RANDOM_TINY}` "
        "(random weights, meaningless mattes)."
    )


def predictor_text(pool: PredictorPool, name: str | None) -> str:
    """Markdown about the chosen predictor: what it is and the licence of its weights."""
    if name is None:
        return no_predictor_text(pool)
    choice = pool.choice(name)
    if not choice.available:
        return f"**{name}** cannot run here: {choice.reason}"
    line = f"**Active: {name}** · {choice.description} · weights licence: {choice.licence}"
    compute = pool.compute(name)
    return f"{line} · computed in {compute}" if compute else line


def predictors_table(pool: PredictorPool) -> str:
    """A Markdown table of every predictor, whether it runs here, its licence and a note."""
    rows = ["| predictor | runs here | weights licence | note |", "|---|---|---|---|"]
    for c in pool.choices():
        note = c.description if c.available else c.reason
        rows.append(f"| {c.name} | {'yes' if c.available else 'no'} | {c.licence} | {note} |")
    return "\n".join(rows)


def plain(text: str) -> str:
    """``text`` shown as typed in Markdown: its markup characters escaped."""
    return re.sub(r"([\\`*_\[\]<>#|~])", r"\\\1", text)


def status_text(matte: Matte) -> str:
    """The status line of a matte: what made it and how, how far to trust it, and the notes
    (the app's about the photo and phrase, then the predictor's)."""
    r = matte.result
    h, w = matte.photo.shape[:2]
    if r.text:
        reuse = " (photo features reused)" if r.image_cached else ""
        head = (
            f"**{r.predictor}** matted *{plain(r.text)}* on a {w}x{h} photo in {r.seconds:.2f} s"
            f"{reuse} · read as {r.setting} · confidence {r.confidence:.2f}"
        )
        head += _corrections(matte)
    else:
        what = {(True, False): "box", (False, True): "clicks", (True, True): "box and clicks"}
        given = what[(matte.corrections.box is not None, bool(matte.corrections.points))]
        head = (
            f"**Matted from the {given} alone** (no phrase, no model: graph cut, then "
            f"closed-form matting) on a {w}x{h} photo in {r.seconds:.2f} s"
        )
    if r.out_of_domain:
        head = "⚠️ **Outside this model's world** · " + head
    elif r.unsure:
        head = "⚠️ **Unsure** · " + head
    notes = [n for n in matte.notes if not n.startswith("unsure")]
    notes += [n for n in r.notes if r.text or not n.startswith("matted from")]
    return head + "".join(f"\n\n⚠️ {plain(n)}" for n in notes)


def _corrections(matte: Matte) -> str:
    """ " · 2 clicks, a box · candidate #1 picked · 3 candidates below", as they apply."""
    parts = []
    described = matte.corrections.describe()
    if described:
        parts.append(described)
    if matte.corrections.candidate is not None:
        parts.append(f"candidate #{matte.corrections.candidate} picked")
    count = len(matte.result.candidates)
    if count > 1:
        parts.append(
            f"{count} candidates below"
            if count <= STRIP_SIZE
            else f"{count} candidates (the first {STRIP_SIZE} below)"
        )
    return "".join(f" · {p}" for p in parts)
