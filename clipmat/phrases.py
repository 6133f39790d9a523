"""Reading a phrase as a keyword (a name: "the cat", "teddy bear", "plastic bag") or as a
referring expression ("the cat on the left", "the red ball", "the man who is smiling").

RIM's two settings differ in what the text holds, not in its length: a keyword names a category,
possibly in several words; an expression adds what singles one entity out. A phrase is read as
an expression when it holds a relation or position word, an attribute (colour, size, adjectival
material or texture, state), a verb or clause word, a possessive, a number, a comma or
semicolon, or more than ``MAX_NAME_WORDS`` words; otherwise it is a keyword. Noun modifiers stay
part of a name ("plastic bag", "fur ball", "glass bottle"); their adjective forms are attributes
("wooden", "furry", "glassy"). Names that contain a listed word ("red panda", "top hat") are
read as expressions: the lists favour what referring phrases use. Modal verbs are left out of
the lists, being nouns as often ("trash can").
"""

from __future__ import annotations

import re
from typing import Literal

Setting = Literal["keyword", "expression"]

MAX_NAME_WORDS = 4  # "hot air balloon", "fire hydrant cap": longer phrases are descriptions
# Words that open a phrase without adding to it ("that" only first: later it opens a clause).
DETERMINERS = frozenset(
    "the a an this that these those my your his her its our their some any".split()
)
RELATION_WORDS = frozenset(
    """about above across after against along alongside among amongst around at before behind
    below beneath beside besides between beyond by close closer closest down far farther
    farthest for from in inside into near nearer nearest next of off on onto opposite out
    outside over past through to toward towards under underneath up upon with within without
    and or but except""".split()
)
POSITION_WORDS = frozenset(
    """left right top bottom middle center centre central front back upper lower leftmost
    rightmost topmost bottommost uppermost lowermost first second third fourth fifth last
    other another""".split()
)
COLOUR_WORDS = frozenset(
    """red orange yellow green blue purple pink brown white gray grey black violet gold golden
    silver beige cyan magenta turquoise maroon crimson scarlet teal khaki ivory indigo lavender
    colorful colourful multicolored multicoloured dark bright pale blond blonde""".split()
)
SIZE_WORDS = frozenset(
    """big bigger biggest small smaller smallest large larger largest little tiny huge giant
    gigantic massive enormous tall taller tallest short shorter shortest long longer longest
    wide narrow thin thick fat slim skinny medium""".split()
)
# Adjectival materials and textures, surface and state words; noun modifiers are not here.
QUALITY_WORDS = frozenset(
    """wooden metallic woolen woollen silken leathery glassy stony knitted woven furry fluffy
    hairy fuzzy curly wavy striped stripy spotted spotty dotted checkered chequered plaid
    patterned shiny glossy matte rough smooth soft transparent translucent opaque salient
    blurry blurred wet dry dirty clean old new young elderly empty full broken open closed
    round square pointed happy sad angry""".split()
)
CLAUSE_WORDS = frozenset(
    """that which who whom whose where when while is are was were be being been has have had
    does do did not wearing holding dressed sitting standing lying
    looking carrying riding eating drinking walking running playing sleeping smiling jumping
    flying swimming hanging facing reading using touching pointing waving showing having
    covered filled made painted placed located surrounded leaning resting posing climbing
    watching talking""".split()
)
CUE_WORDS = RELATION_WORDS | POSITION_WORDS | COLOUR_WORDS | SIZE_WORDS | QUALITY_WORDS
CUE_WORDS |= CLAUSE_WORDS
_WORD = re.compile(r"[a-z0-9]+(?:[-'][a-z0-9]+)*")


def content_words(text: str) -> list[str]:
    """The phrase's words, lower-cased, leading determiners dropped ("the red star" -> ["red",
    "star"]); hyphenated words and possessives stay whole ("non-salient", "man's")."""
    words = _WORD.findall(text.lower().replace("\u2019", "'"))
    while words and words[0] in DETERMINERS:
        words = words[1:]
    return words


def expression_cues(text: str) -> list[str]:
    """What makes ``text`` an expression: its cue words, "," or ";", "'s", digits, or
    "length" when it is longer than a name; empty for a keyword. A single word after
    determiners is a name whatever it is ("the orange", "the left").
    """
    cues = [mark for mark in (",", ";") if mark in text]
    words = content_words(text)
    if len(words) <= 1:
        return cues
    for word in words:
        parts = word.split("-")
        if word.endswith("'s") or any(c.isdigit() for c in word):
            cues.append(word)
        elif word in CUE_WORDS or (len(parts) > 1 and any(p in CUE_WORDS for p in parts)):
            cues.append(word)
    if len(words) > MAX_NAME_WORDS:
        cues.append("length")
    return cues


def infer_setting(text: str) -> Setting:
    """ "keyword" when ``text`` is a name (one or more words, no relation, attribute or clause;
    see :func:`expression_cues`), else "expression".

    >>> infer_setting("the teddy bear"), infer_setting("the bear on the left")
    ('keyword', 'expression')
    """
    return "expression" if expression_cues(text) else "keyword"
