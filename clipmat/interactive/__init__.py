"""The mattes a user's clicks and box make with no model at all, and a model's matte mended
by them.

A box alone, or clicks alone, cut an object out of any photo (:func:`prompt_matte`,
:mod:`clipmat.interactive.prompts`). GrabCut (Rother, Kolmogorov and Blake, 2004; OpenCV's
implementation) separates object from background by colour models and a graph cut; with a box
it runs once per prior: the box's outer ring of 0 and 10% of its sides starts as probable
background; every click is a sure label, and a negative click also makes its surroundings
probable background. Clicks alone stand for a box (:func:`click_box`). The share of the cuts
that hold a pixel is its vote; the majority's edge gets an unknown band that follows the colour
models' uncertainty (:mod:`clipmat.interactive.colour_models`), matted in closed form
(:mod:`clipmat.refine`).

A model's matte is corrected by one cut that starts from it (:func:`correct_matte`,
:func:`graph_cut`, :mod:`clipmat.interactive.cuts`). How clicks and a box choose among a model's
regions (:class:`clipmat.Candidate`) is :mod:`clipmat.predictors.corrections`.
"""

from clipmat.interactive.cuts import (
    Box,
    Point,
    box_window,
    correct_matte,
    graph_cut,
    hit,
    matte_region,
)
from clipmat.interactive.prompts import click_box, prompt_matte, prompt_votes

__all__ = [
    "Box",
    "Point",
    "box_window",
    "click_box",
    "correct_matte",
    "graph_cut",
    "hit",
    "matte_region",
    "prompt_matte",
    "prompt_votes",
]
