"""CLIPMat web app: a photo and a phrase in, a soft matte and edits of it out.

    python app.py [--host H] [--port P] [--predictor NAME_OR_CHECKPOINT] [--device D]

API endpoints for gradio_client: /matte (image, phrase, predictor) and /edit (image, phrase,
predictor, mode, effects, strength, color, background).
"""

from __future__ import annotations

import argparse
import socket
import sys
from abc import ABCMeta
from pathlib import Path
from typing import Any

import gradio as gr
import PIL.Image

from clipmat.app_service import EFFECTS, EditSettings, Matte, MatteService
from clipmat.app_support import RANDOM_TINY, PredictorPool, load_examples

try:  # Hugging Face Spaces with ZeroGPU: matting runs on a GPU lent per call
    import spaces
except ImportError:
    spaces = None

EXAMPLES_DIR = Path(__file__).resolve().parent / "examples"
MATTE_CONCURRENCY = 2  # matting calls at once (the model is CPU- or GPU-bound)
EDIT_CONCURRENCY = 4  # edits are compositing only
QUEUE_SIZE = 64
MAX_FILE_SIZE = "25mb"
IMAGE_HEIGHT = 380
MODE_CHOICES = [
    ("Highlight", "highlight"),
    ("New background", "background"),
    ("Colour", "color"),
    ("Cutout", "cutout"),
]
CSS = """
#status { padding: 10px 14px; border-radius: 8px; font-size: 1.02rem;
          border: 1px solid var(--border-color-primary); background: var(--block-background-fill); }
#title h1 { margin-bottom: 0; }
"""


def _read_upload(self: gr.Image, payload: Any) -> Any:
    try:
        return gr.Image.preprocess(self, payload)
    except (OSError, ValueError, PIL.Image.DecompressionBombError) as err:
        raise gr.Error(
            f"this file could not be read as an image ({type(err).__name__}); "
            "upload a JPEG, PNG, WebP, BMP, TIFF or GIF photo"
        ) from None


# gr.Image with the same front end that answers an unreadable upload with a clear message.
# Construct it with image_mode=None and type="filepath": the uploaded file then reaches our loader
# untouched (the default "RGB" re-encodes grayscale, 16-bit and CMYK files lossily). It is made
# with ABCMeta.__new__ because gradio's component metaclass would write a .pyi stub beside this
# file for a subclass declared with `class`; the metaclass adds nothing else for a subclass
# without its own __init__ or EVENTS.
PhotoInput = ABCMeta.__new__(
    type(gr.Image),
    "PhotoInput",
    (gr.Image,),
    {
        "__module__": __name__,
        "__doc__": "gr.Image that reports unreadable uploads clearly.",
        "is_template": True,  # rendered by the built-in image component
        "preprocess": _read_upload,
        "get_component_class_id": classmethod(lambda cls: gr.Image.get_component_class_id()),
    },
)


def _no_predictor_text(pool: PredictorPool) -> str:
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
        return _no_predictor_text(pool)
    choice = pool.choice(name)
    if not choice.available:
        return f"**{name}** cannot run here: {choice.reason}"
    return f"**Active: {name}** · {choice.description} · weights licence: {choice.licence}"


def predictors_table(pool: PredictorPool) -> str:
    rows = ["| predictor | runs here | weights licence | note |", "|---|---|---|---|"]
    for c in pool.choices():
        note = c.description if c.available else c.reason
        rows.append(f"| {c.name} | {'yes' if c.available else 'no'} | {c.licence} | {note} |")
    return "\n".join(rows)


def status_text(matte: Matte) -> str:
    """One status line for a matte: predictor, timing, cache, confidence, warnings."""
    r = matte.result
    h, w = matte.photo.shape[:2]
    reuse = " (photo features reused)" if r.image_cached else ""
    head = (
        f"**{r.predictor}** matted *{r.text}* on a {w}x{h} photo in {r.seconds:.2f} s{reuse}"
        f" · read as {r.setting} · confidence {r.confidence:.2f}"
    )
    if r.unsure:
        head = "⚠️ **Unsure** · " + head
    notes = "".join(f"\n\n⚠️ {n}" for n in matte.notes if not n.startswith("unsure"))
    return head + notes


def build_demo(
    pool: PredictorPool, default: str | None = None, *, service: MatteService | None = None
) -> gr.Blocks:
    """The app's Blocks for ``pool``, starting on predictor ``default`` (None: none can run)."""
    service = service or MatteService(pool)
    names = pool.names()

    def matte_fn(image, phrase, predictor, refine=False, progress=gr.Progress()):  # noqa: B008
        if not predictor:
            raise gr.Error(_no_predictor_text(pool))
        try:
            matte = service.matte(image, phrase, predictor, refine=bool(refine), progress=progress)
        except (ValueError, TypeError) as err:
            raise gr.Error(str(err)) from None
        for note in matte.notes:
            gr.Warning(note)
        folder = matte.folder
        return (
            str(folder / "matte.png"),
            str(folder / "overlay.png"),
            status_text(matte),
            str(folder / "cutout.png"),
            str(folder / "matte16.png"),
            {"phrase": phrase, "predictor": predictor, "refine": bool(refine)},
        )

    if spaces is not None:
        matte_fn = spaces.GPU(matte_fn)

    def edit_fn(image, phrase, predictor, mode, effects, strength, color, background, refine=False):
        if not predictor:
            raise gr.Error(_no_predictor_text(pool))
        try:
            settings = EditSettings(mode, tuple(effects or ()), float(strength), color, background)
            matte = service.matte(image, phrase, predictor, refine=bool(refine))
            return str(service.edit_file(matte, settings))
        except (ValueError, TypeError) as err:
            raise gr.Error(str(err)) from None

    def ui_edit_fn(image, last, mode, effects, strength, color, background):
        if image is None or not last:
            return None
        return edit_fn(
            image, last["phrase"], last["predictor"], mode, effects, strength, color, background,
            last["refine"],
        )  # fmt: skip

    def select_predictor(name: str, progress=gr.Progress()):  # noqa: B008
        try:
            progress(0.1, desc=f"Loading {name}")
            pool.get(name)
        except ValueError as err:
            gr.Warning(str(err))
        return predictor_text(pool, name)

    def mode_controls(mode: str):
        return (
            gr.update(visible=mode == "highlight"),
            gr.update(visible=mode == "highlight"),
            gr.update(visible=mode in ("highlight", "color")),
            gr.update(visible=mode == "background"),
        )

    with gr.Blocks(title="CLIPMat: matting by phrase") as demo:
        gr.Markdown(
            "# ✂️ CLIPMat\nType what to cut out; get a soft matte with hair and fur kept, "
            "then highlight it, put it on a new background or a colour, or download it.",
            elem_id="title",
        )
        last = gr.State(None)
        with gr.Row(equal_height=False):
            with gr.Column(scale=4, min_width=320):
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
                    elem_id="phrase",
                )
                with gr.Row():
                    run = gr.Button("Matte", variant="primary", elem_id="run")
                    gr.ClearButton([image, phrase], value="Clear")
                predictor = gr.Dropdown(
                    names,
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
            with gr.Column(scale=8, min_width=480):
                status = gr.Markdown(
                    "Upload a photo, type a phrase and press **Matte**."
                    if default
                    else _no_predictor_text(pool),
                    label="Status",
                    elem_id="status",
                )
                with gr.Row():
                    with gr.Tabs():
                        with gr.Tab("Matte"):
                            matte_img = gr.Image(
                                label="Matte",
                                format="png",
                                interactive=False,
                                height=IMAGE_HEIGHT,
                                elem_id="matte",
                            )
                        with gr.Tab("Overlay"):
                            overlay_img = gr.Image(
                                label="Overlay",
                                format="png",
                                interactive=False,
                                height=IMAGE_HEIGHT,
                                elem_id="overlay",
                            )
                    edit_img = gr.Image(
                        label="Edit",
                        format="png",
                        interactive=False,
                        height=IMAGE_HEIGHT + 40,
                        elem_id="edit",
                    )
                with gr.Row():
                    mode = gr.Radio(MODE_CHOICES, value="highlight", label="Edit", scale=3)
                    effects = gr.CheckboxGroup(
                        list(EFFECTS), value=["dim"], label="Effects", scale=3
                    )
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
                examples = load_examples(EXAMPLES_DIR)
                if examples:
                    gr.Examples(
                        [[e["image"], e["text"]] for e in examples],
                        inputs=[image, phrase],
                        cache_examples=False,
                        examples_per_page=5,
                        label="Examples",
                    )
        with gr.Accordion("Predictors on this machine", open=False):
            gr.Markdown(predictors_table(pool))

        edit_inputs = [mode, effects, strength, color, background]
        matte_outputs = [matte_img, overlay_img, status, cutout_btn, matte_btn, last]
        matte_event = dict(
            fn=matte_fn,
            inputs=[image, phrase, predictor, refine],
            outputs=matte_outputs,
            concurrency_limit=MATTE_CONCURRENCY,
            concurrency_id="matte",
        )
        ui_edit = dict(
            fn=ui_edit_fn,
            inputs=[image, last, *edit_inputs],
            outputs=edit_img,
            api_visibility="private",
            concurrency_limit=EDIT_CONCURRENCY,
            concurrency_id="edit",
        )
        run.click(**matte_event, api_name="matte").success(**ui_edit)
        phrase.submit(**matte_event, api_visibility="private").success(**ui_edit)
        mode.change(
            mode_controls,
            mode,
            [effects, strength, color, background],
            queue=False,
            api_visibility="private",
        )
        for control in (mode, effects, color, background):
            control.change(**ui_edit)
        strength.release(**ui_edit)
        image.change(
            lambda: (None, None, None, None),
            None,
            [matte_img, overlay_img, edit_img, last],
            queue=False,
            api_visibility="private",
        )
        predictor.change(select_predictor, predictor, predictor_info, api_visibility="private")
        # /edit for API clients: stateless, the matte comes from the cache or is computed.
        api_edit = gr.Button(visible=False)
        api_edit.click(
            edit_fn,
            [image, phrase, predictor, *edit_inputs, refine],
            edit_img,
            api_name="edit",
            concurrency_limit=EDIT_CONCURRENCY,
            concurrency_id="edit",
        )
    demo.queue(default_concurrency_limit=EDIT_CONCURRENCY, max_size=QUEUE_SIZE)
    return demo


def launch_options() -> dict[str, Any]:
    """Options for ``demo.launch`` shared by main() and the tests: theme, CSS, limits."""
    return {
        "theme": gr.themes.Soft(primary_hue="indigo", secondary_hue="pink"),
        "css": CSS,
        "show_error": True,
        "max_file_size": MAX_FILE_SIZE,
    }


def serve_local(demo: gr.Blocks, port: int | None = None) -> str:
    """Launch ``demo`` on 127.0.0.1 without blocking (a free port by default); returns its URL."""
    if port is None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
    demo.launch(
        server_name="127.0.0.1",
        server_port=port,
        prevent_thread_lock=True,
        quiet=True,
        **launch_options(),
    )
    return f"http://127.0.0.1:{port}/"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="address to serve on")
    parser.add_argument("--port", type=int, default=None, help="port (default: 7860 or free)")
    parser.add_argument(
        "--predictor",
        default="auto",
        help=f"a predictor name, 'auto', '{RANDOM_TINY}' (random weights, for UI work) or a "
        "checkpoint file",
    )
    parser.add_argument("--device", default="auto", help="'auto' (CUDA when present), 'cpu', ...")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    try:
        pool, name = PredictorPool.from_option(args.predictor, device=args.device)
    except (ValueError, FileNotFoundError, NotImplementedError) as err:
        sys.exit(f"app: {err}")
    if name is None:
        print("app: no predictor can run here; the app starts with matting off.", file=sys.stderr)
    build_demo(pool, name).launch(server_name=args.host, server_port=args.port, **launch_options())


if __name__ == "__main__":
    main()
