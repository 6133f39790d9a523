"""What the app tells the user, as Markdown: the predictor, its licence, each matte's status."""

from __future__ import annotations

import re

from clipmat_app.pool import RANDOM_TINY, PredictorPool
from clipmat_app.service import Matte


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
    return f"**Active: {name}** · {choice.description} · weights licence: {choice.licence}"


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
    """One status line for a matte: predictor, timing, cache, confidence, warnings."""
    r = matte.result
    h, w = matte.photo.shape[:2]
    reuse = " (photo features reused)" if r.image_cached else ""
    head = (
        f"**{r.predictor}** matted *{plain(r.text)}* on a {w}x{h} photo in {r.seconds:.2f} s{reuse}"
        f" · read as {r.setting} · confidence {r.confidence:.2f}"
    )
    if r.unsure:
        head = "⚠️ **Unsure** · " + head
    notes = "".join(f"\n\n⚠️ {n}" for n in matte.notes if not n.startswith("unsure"))
    return head + notes
