"""The app's page: :func:`build_demo` lays out the widgets, then wires them to the callbacks.

API endpoints for gradio_client: /matte (image, phrase, predictor, refine, points, box,
candidate; the last three optional), /edit (image, phrase, predictor, mode, effects, strength,
color, background, refine) and /video (clip, phrase, predictor, mode, color, background; the
Video tab, :mod:`clipmat_app.video`). Every job goes through the queue (no direct REST route
skips it) and is checked before it joins it (:mod:`clipmat_app.admission`).

On the page, a click on the overlay adds or removes a region, or sets a corner of a box; the
clicks and the box are kept in hidden ``points`` and ``box`` fields, the values /matte takes, and
the candidates' strip sets ``candidate`` (:mod:`clipmat_app.clicks`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from clipmat_app.admission import Admission
from clipmat_app.callbacks import Callbacks
from clipmat_app.clicks import ClickCallbacks
from clipmat_app.components import PhotoInput
from clipmat_app.edits import EFFECTS
from clipmat_app.http_api import PlainAPI
from clipmat_app.inputs import MAX_PHRASE_INPUT, load_examples
from clipmat_app.pool import PredictorPool
from clipmat_app.service import MATTE_CONCURRENCY, MatteService
from clipmat_app.texts import no_predictor_text, predictor_text, predictors_table
from clipmat_app.video import video_tab

EDIT_CONCURRENCY = 4  # edits are compositing (an edit that must matte first takes a matte slot)
QUEUE_SIZE = 64
IMAGE_HEIGHT = 380
TITLE = (
    "# ✂️ CLIPMat\nType what to cut out; get a soft matte with hair and fur kept, "
    "then highlight it, put it on a new background or a colour, or download it."
)
HINT = (
    "No phrase? Draw a box (**Box corners**, then two opposite corners of the object on the "
    "overlay) or click on the object (**Pick**): a box or clicks alone give a matte, no model "
    "needed. With a phrase, a click picks the object under it (more clicks add more), "
    "**Remove** takes one out, and a box keeps what is inside it."
)
CLICK_CHOICES = [("Pick (+)", "add"), ("Remove (−)", "remove"), ("Box corners", "box")]
MODE_CHOICES = [
    ("Highlight", "highlight"),
    ("New background", "background"),
    ("Colour", "color"),
    ("Cutout", "cutout"),
]


@dataclass
class Widgets:
    """The components the events read and write."""

    image: Any
    phrase: Any
    run: Any
    predictor: Any
    refine: Any
    predictor_info: Any
    status: Any
    matte_img: Any
    overlay_img: Any
    edit_img: Any
    mode: Any
    effects: Any
    strength: Any
    color: Any
    background: Any
    cutout_btn: Any
    matte_btn: Any
    click_mode: Any
    clear_corrections: Any
    strip: Any
    points: Any
    box: Any
    candidate: Any
    candidates: Any
    corner: Any
    last: Any

    @property
    def edit_controls(self) -> list[Any]:
        return [self.mode, self.effects, self.strength, self.color, self.background]

    @property
    def matte_outputs(self) -> list[Any]:
        """What /matte returns (the state last)."""
        return [
            self.matte_img,
            self.overlay_img,
            self.status,
            self.cutout_btn,
            self.matte_btn,
            self.candidates,
            self.last,
        ]

    @property
    def correction_outputs(self) -> list[Any]:
        """What a correction on the page returns: /matte's outputs and the corrections."""
        return [*self.matte_outputs, self.points, self.box, self.candidate, self.corner]


def build_demo(
    pool: PredictorPool,
    default: str | None = None,
    *,
    service: MatteService | None = None,
    admission: Admission | None = None,
) -> gr.Blocks:
    """The app's Blocks for ``pool``, starting on predictor ``default`` (None: none can run).

    ``service`` makes and keeps the mattes (its ``matte_slots`` bound matting for every event);
    ``admission`` checks jobs before they are queued (default caps when None).
    """
    callbacks = Callbacks(pool, service or MatteService(pool, matte_slots=MATTE_CONCURRENCY))
    with gr.Blocks(title="CLIPMat: matting by phrase") as demo:
        gr.Markdown(TITLE, elem_id="title")
        with gr.Tabs():
            with gr.Tab("Photo", id="photo-tab"):
                with gr.Row(equal_height=False):
                    with gr.Column(scale=4, min_width=320):
                        inputs = _input_column(pool, default)
                    with gr.Column(scale=8, min_width=480):
                        outputs = _output_column(pool, default)
                        _examples(inputs["image"], inputs["phrase"])
            with gr.Tab("Video", id="video-tab"):
                video_tab(pool, callbacks.service, default)
        with gr.Accordion("Predictors on this machine", open=False):
            gr.Markdown(predictors_table(pool))
        widgets = Widgets(**inputs, **outputs, **_correction_fields())
        _wire(widgets, callbacks)
        _wire_corrections(widgets, callbacks, ClickCallbacks(callbacks))
    demo.queue(default_concurrency_limit=EDIT_CONCURRENCY, max_size=QUEUE_SIZE, api_open=False)
    admission = admission or Admission()
    admission.install(demo)
    demo.plain_api = PlainAPI(callbacks.service, admission, demo._queue, default)  # see launch
    return demo


def _input_column(pool: PredictorPool, default: str | None) -> dict[str, Any]:
    """Photo, phrase, the Matte button, the predictor and the refine switch."""
    image = PhotoInput(
        label="Photo",
        image_mode=None,
        type="filepath",
        sources=["upload", "clipboard", "webcam"],
        height=IMAGE_HEIGHT,
        elem_id="photo",
    )
    phrase = gr.Textbox(
        label="Phrase",
        placeholder="e.g. the cat with brown and black fur",
        max_lines=2,
        max_length=MAX_PHRASE_INPUT,
        elem_id="phrase",
    )
    gr.Markdown(HINT, elem_id="hint")
    with gr.Row():
        run = gr.Button("Matte", variant="primary", elem_id="run")
        gr.ClearButton([image, phrase], value="Clear")
    predictor = gr.Dropdown(
        pool.names(),
        value=default,
        label="Predictor",
        elem_id="predictor",
        allow_custom_value=False,
    )
    refine = gr.Checkbox(
        value=True,
        label="Refine edges (closed-form matting of the hair and fur band; about "
        "0.7 s more on a 12 MP photo)",
        elem_id="refine",
    )
    predictor_info = gr.Markdown(predictor_text(pool, default))
    return dict(
        image=image,
        phrase=phrase,
        run=run,
        predictor=predictor,
        refine=refine,
        predictor_info=predictor_info,
    )


def _output_column(pool: PredictorPool, default: str | None) -> dict[str, Any]:
    """Status line, matte and overlay tabs, the edit view, its controls, downloads, examples."""
    waiting = "Upload a photo, type a phrase and press **Matte**."
    status = gr.Markdown(
        waiting if default else no_predictor_text(pool), label="Status", elem_id="status"
    )
    with gr.Row():
        with gr.Tabs():
            with gr.Tab("Overlay: click to correct"):
                overlay_img = _result_image("Overlay", "overlay")
            with gr.Tab("Matte"):
                matte_img = _result_image("Matte", "matte")
        edit_img = _result_image("Edit", "edit", extra_height=40)
    corrections = _correction_controls()
    with gr.Row():
        mode = gr.Radio(MODE_CHOICES, value="highlight", label="Edit", scale=3)
        effects = gr.CheckboxGroup(list(EFFECTS), value=["dim"], label="Effects", scale=3)
    with gr.Row():
        strength = gr.Slider(0, 1, value=0.6, step=0.05, label="Strength", scale=3)
        color = gr.ColorPicker("#2563eb", label="Colour", scale=1)
        background = PhotoInput(
            image_mode=None,
            label="New background (empty: blur the photo's own)",
            type="filepath",
            sources=["upload", "clipboard"],
            height=160,
            visible=False,
            scale=3,
        )
    with gr.Row():
        cutout_btn = gr.DownloadButton("Download cutout (PNG)", value=None)
        matte_btn = gr.DownloadButton("Download matte (16-bit PNG)", value=None)
    return dict(
        status=status,
        matte_img=matte_img,
        overlay_img=overlay_img,
        edit_img=edit_img,
        mode=mode,
        effects=effects,
        strength=strength,
        color=color,
        background=background,
        cutout_btn=cutout_btn,
        matte_btn=matte_btn,
        **corrections,
    )


def _correction_controls() -> dict[str, Any]:
    """What a click on the overlay does, clearing the clicks, and the candidates' strip."""
    with gr.Row(equal_height=False):
        click_mode = gr.Radio(
            CLICK_CHOICES,
            value="add",
            label="A click on the overlay",
            elem_id="click-mode",
            scale=3,
        )
        clear_corrections = gr.Button(
            "Clear clicks and box", size="sm", elem_id="clear-corrections", scale=1, min_width=120
        )
    strip = gr.Gallery(
        label="Candidates: pick one to matte it instead",
        columns=8,
        height=210,
        allow_preview=False,
        object_fit="contain",
        visible=False,
        elem_id="strip",
    )
    return dict(click_mode=click_mode, clear_corrections=clear_corrections, strip=strip)


def _correction_fields() -> dict[str, Any]:
    """Hidden fields: the corrections (inputs of /matte, in the photo's own pixels), the
    candidates (an output of /matte), a box's first corner and the last matte's state."""
    return dict(
        points=gr.JSON(None, visible=False, label="points", elem_id="points"),
        box=gr.JSON(None, visible=False, label="box", elem_id="box"),
        candidate=gr.Number(
            None, visible=False, precision=0, label="candidate", elem_id="candidate"
        ),
        candidates=gr.JSON(None, visible=False, label="candidates", elem_id="candidates"),
        corner=gr.State(None),
        last=gr.State(None),
    )


def _examples(image: Any, phrase: Any) -> None:
    """The bundled example photos and phrases, when there are any."""
    examples = load_examples()
    if examples:
        gr.Examples(
            [[e["image"], e["text"]] for e in examples],
            inputs=[image, phrase],
            cache_examples=False,
            examples_per_page=5,
            label="Examples",
        )


def _result_image(label: str, elem_id: str, extra_height: int = 0) -> gr.Image:
    return gr.Image(
        label=label,
        format="png",
        interactive=False,
        height=IMAGE_HEIGHT + extra_height,
        elem_id=elem_id,
    )


def _wire(w: Widgets, cb: Callbacks) -> None:
    """Events: Matte (button, Enter) then the strip and the edit view; edit controls; predictor;
    the API."""
    matte_event = dict(
        fn=cb.ui_matte,
        inputs=[w.image, w.phrase, w.predictor, w.refine, w.points, w.box, w.candidate],
        outputs=w.matte_outputs,
        api_visibility="private",
        concurrency_limit=cb.service.matte_slots,
        concurrency_id="matte",
    )
    _then_views(w.run.click(**matte_event), w, cb)
    _then_views(w.phrase.submit(**matte_event), w, cb)
    # /matte for API clients: the same inputs, every file written before it answers.
    api_matte = {**matte_event, "fn": cb.matte, "api_visibility": "public"}
    gr.Button(visible=False).click(**api_matte, api_name="matte")
    private = dict(queue=False, api_visibility="private")
    w.mode.change(cb.mode_controls, w.mode, w.edit_controls[1:], **private)
    for control in (w.mode, w.effects, w.color, w.background):
        control.change(**_ui_edit(w, cb))
    w.strength.release(**_ui_edit(w, cb))
    w.predictor.change(cb.select_predictor, w.predictor, w.predictor_info, api_visibility="private")
    # /edit for API clients: stateless, the matte comes from the cache or is computed.
    gr.Button(visible=False).click(
        cb.edit,
        [w.image, w.phrase, w.predictor, *w.edit_controls, w.refine],
        w.edit_img,
        api_name="edit",
        concurrency_limit=EDIT_CONCURRENCY,
        concurrency_id="edit",
    )


def _ui_edit(w: Widgets, cb: Callbacks) -> dict[str, Any]:
    return dict(
        fn=cb.ui_edit,
        inputs=[w.image, w.last, *w.edit_controls],
        outputs=w.edit_img,
        api_visibility="private",
        concurrency_limit=EDIT_CONCURRENCY,
        concurrency_id="edit",
    )


def _then_views(event: Any, w: Widgets, cb: Callbacks) -> None:
    """After a matte: the candidates' strip, the edit view, then the downloads when they were
    left for later (a correction shows its matte first)."""
    private = dict(api_visibility="private", show_progress="minimal")
    strip = event.success(cb.strip, w.last, w.strip, concurrency_id="edit", **private)
    edit = strip.success(**_ui_edit(w, cb))
    edit.success(
        cb.downloads,
        [w.image, w.last],
        [w.cutout_btn, w.matte_btn],
        concurrency_limit=cb.service.matte_slots,
        concurrency_id="matte",
        **private,
    )


def _wire_corrections(w: Widgets, cb: Callbacks, clicks: ClickCallbacks) -> None:
    """Clicks on the overlay, picks in the strip, clearing them; a new photo shown at once."""
    correction = dict(
        outputs=w.correction_outputs,
        show_progress="minimal",  # the overlay stays in view while it is matted again
        api_visibility="private",
        concurrency_limit=cb.service.matte_slots,
        concurrency_id="matte",
    )
    click_inputs = [w.image, w.phrase, w.predictor, w.refine, w.points, w.box, w.candidate]
    click_inputs += [w.click_mode, w.corner, w.last]
    _then_views(w.overlay_img.select(clicks.click, click_inputs, **correction), w, cb)
    _then_views(w.strip.select(clicks.pick, [w.image, w.refine, w.last], **correction), w, cb)
    clear_inputs = [w.image, w.phrase, w.predictor, w.refine]
    _then_views(w.clear_corrections.click(clicks.clear, clear_inputs, **correction), w, cb)
    # A pick belongs to one phrase and predictor: typing or switching forgets it.
    for control in (w.phrase, w.predictor):
        control.change(None, None, w.candidate, js="() => null", queue=False)
    cleared = [w.matte_img, w.overlay_img, w.edit_img, w.strip, w.last]
    cleared += [w.points, w.box, w.candidate, w.corner, w.candidates]
    w.image.change(
        lambda: (None, None, None, gr.update(value=None, visible=False), *([None] * 6)),
        None,
        cleared,
        queue=False,
        api_visibility="private",
    ).then(
        clicks.preview,
        w.image,
        [w.overlay_img, w.last],
        api_visibility="private",
        concurrency_limit=cb.service.matte_slots,
        concurrency_id="matte",
    )
