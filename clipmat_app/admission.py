"""Who may join the queue, and with what: each job is checked before it is queued.

Gradio queues every job of the app (``/queue/join``, ``/call/<api_name>``). :class:`Admission`
wraps the demo's queue so that, before a job is queued,

- its inputs are checked (photos must be files Gradio received or small ``data:`` URLs, phrases
  short valid text, numbers numbers, switches true or false, clicks, a box and a candidate
  index in their forms, :mod:`clipmat_app.corrections`); a bad input is answered 422 in Gradio's
  validation format, which the web page shows beside the input and gradio_client raises as a
  ValidationError naming the parameter; trailing inputs whose parameter has a default may be
  left out (as gradio_client leaves them to their defaults), and are filled in with it;
- the client's pending jobs (queued or running) are counted, per session and per client
  address; over either cap the job is answered 429, so one client cannot fill the queue.

This relies on gradio 6's queue (``Blocks._queue``, its ``push``, ``event_queue_per_concurrency_id``
and ``active_jobs``); tests/app/test_app_security.py fails if that changes.
"""

from __future__ import annotations

import inspect
import itertools
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import gradio as gr
from fastapi import HTTPException

from clipmat_app.components import PhotoInput
from clipmat_app.corrections import box_problem, candidate_problem, points_problem
from clipmat_app.inputs import (
    NOT_AN_UPLOAD,
    data_url_problem,
    phrase_problem,
    upload_folders,
    upload_problem,
)

PER_SESSION = 4  # pending jobs of one browser tab or API client session
PER_ADDRESS = 8  # pending jobs of one client address (several tabs, or people behind one NAT)
MAX_COLOR_CHARS = 100
RETRY_SECONDS = 5
# Inputs checked by what they hold rather than by their kind: the page's hidden fields (elem_id).
PROMPT_CHECKS = {"points": points_problem, "box": box_problem, "candidate": candidate_problem}


def client_address(request: Any, trusted_proxies: int = 0) -> str:
    """The client's address, one the client cannot choose.

    With ``trusted_proxies`` = 0 it is the connection's peer. Behind N proxies that each append
    the address they saw to X-Forwarded-For (a Hugging Face Space has one), the first of them
    wrote the client's address N places from the right; whatever stands left of it the client
    may have written itself. A header with fewer than N addresses did not pass those proxies:
    the peer is taken (as Werkzeug's ProxyFix does).
    """
    if trusted_proxies > 0 and request is not None:
        forwarded = [a.strip() for a in request.headers.get("x-forwarded-for", "").split(",")]
        forwarded = [a for a in forwarded if a]
        if len(forwarded) >= trusted_proxies:
            return forwarded[-trusted_proxies]
    client = getattr(request, "client", None)
    return getattr(client, "host", None) or "unknown"


def photo_problem(value: Any, folders: list) -> str | None:
    """Why a photo input (a FileData-like dict) cannot be read, or None. Paths outside Gradio's
    upload folder and the examples, URLs, and anything not shaped as a file get one message."""
    if value is None:
        return None
    if not isinstance(value, dict):
        return NOT_AN_UPLOAD
    url = value.get("url")
    if isinstance(url, str) and url.startswith("data:"):
        return data_url_problem(url)
    if value.get("path") is None:
        return NOT_AN_UPLOAD
    return upload_problem(value.get("path"), folders)


def input_problem(block: Any, value: Any, name: str, folders: list) -> str | None:
    """Why ``value`` cannot be the input of component ``block`` (named ``name``), or None."""
    check = PROMPT_CHECKS.get(getattr(block, "elem_id", None) or "")
    if check is not None:
        return check(value)
    if isinstance(block, PhotoInput | gr.Video):  # a clip is a file received as a photo is
        return photo_problem(value, folders)
    if isinstance(block, gr.Textbox):
        return phrase_problem(value)
    if isinstance(block, gr.Slider):
        low, high = block.minimum, block.maximum
        if isinstance(value, bool) or not isinstance(value, int | float):
            return f"{name} must be a number from {low:g} to {high:g}, got {type(value).__name__}"
        if not low <= value <= high:
            return f"{name} must be a number from {low:g} to {high:g}, got {value!r}"
    if isinstance(block, gr.Checkbox) and value is not None and not isinstance(value, bool):
        return f"{name} must be true or false, got {type(value).__name__}"
    if isinstance(block, gr.CheckboxGroup) and value is not None:
        choices = [str(c[1]) for c in block.choices]
        if not isinstance(value, list) or not all(v in choices for v in value):
            return f"{name} must be a list of some of: {', '.join(choices)}"
    if isinstance(block, gr.ColorPicker) and value is not None:
        if not isinstance(value, str) or len(value) > MAX_COLOR_CHARS:
            return f"{name} must be a colour such as '#2563eb', 'rgb(37, 99, 235)' or 'orange'"
    return None


class Admission:
    """Checks each job before it joins the queue (see the module's docstring).

    Args:
        per_session: the most pending jobs of one session.
        per_address: the most pending jobs of one client address.
        trusted_proxies: proxies in front of the app that append to X-Forwarded-For (see
            :func:`client_address`; 0: the connection's address).
    """

    def __init__(
        self,
        *,
        per_session: int = PER_SESSION,
        per_address: int = PER_ADDRESS,
        trusted_proxies: int = 0,
    ) -> None:
        if not isinstance(trusted_proxies, int) or trusted_proxies < 0:
            raise ValueError(f"trusted_proxies must be 0 or more, got {trusted_proxies!r}")
        self.per_session = per_session
        self.per_address = per_address
        self.trusted_proxies = trusted_proxies
        self.stats = {"admitted": 0, "refused_inputs": 0, "refused_busy": 0}
        # jobs being queued right now, and the plain API's requests while they run
        self._joining: Counter[tuple[str, str]] = Counter()
        self._api_jobs = itertools.count()

    def install(self, demo: gr.Blocks) -> None:
        """Check every job of ``demo`` before its queue takes it (call after ``demo.queue``)."""
        queue = demo._queue
        original = queue.push

        async def push(body: Any, request: Any, username: Any) -> Any:
            fn = demo.fns.get(body.fn_index) if body.fn_index is not None else None
            if fn is not None:
                body.data = with_defaults(fn, body.data)
                problems = self.check_inputs(fn, body.data)
                if problems is not None:
                    self.stats["refused_inputs"] += 1
                    return False, problems, "validator_error"
            session = body.session_hash or f"no-session-{id(body)}"
            address = client_address(request, self.trusted_proxies)
            self.check_busy(queue, session, address)
            keys = [("session", session), ("address", address)]
            self._joining.update(keys)
            try:
                result = await original(body=body, request=request, username=username)
            finally:
                self._joining.subtract(keys)
            self.stats["admitted"] += bool(result[0])
            return result

        queue.push = push

    @contextmanager
    def api_job(self, queue: Any, address: str) -> Iterator[None]:
        """Admit one request of the plain HTTP API from ``address`` while it runs: refused
        (HTTPException 429) when the address already has its share of the page's jobs and these
        together; counted against that share until it ends."""
        session = f"api-{next(self._api_jobs)}"
        self.check_busy(queue, session, address)
        keys = [("address", address)]
        self._joining.update(keys)
        self.stats["admitted"] += 1
        try:
            yield
        finally:
            self._joining.subtract(keys)

    def check_inputs(self, fn: Any, data: Any) -> list[dict[str, Any]] | None:
        """Gradio validation entries for a job's inputs when one is bad, else None."""
        names = _parameter_names(fn)
        if not isinstance(data, list) or len(data) != len(fn.inputs):
            got = len(data) if isinstance(data, list) else type(data).__name__
            message = f"this call takes {len(fn.inputs)} inputs ({', '.join(names)}), got {got}"
            return [
                {
                    "__type__": "validate",
                    "is_valid": False,
                    "message": message,
                    "parameter_name": "inputs",
                }
            ]
        folders = upload_folders(*{getattr(b, "GRADIO_CACHE", None) for b in fn.inputs})
        entries = []
        for i, (block, value) in enumerate(zip(fn.inputs, data, strict=True)):
            name = names[i] if i < len(names) else f"parameter_{i}"
            problem = input_problem(block, value, name, folders)
            entries.append(
                {
                    "__type__": "validate",
                    "is_valid": problem is None,
                    "message": problem or "",
                    "parameter_name": name,
                }
            )
        return entries if any(not e["is_valid"] for e in entries) else None

    def check_busy(self, queue: Any, session: str, address: str) -> None:
        """Raise 429 when the session or the address already has its share of pending jobs."""
        waiting = [e for q in queue.event_queue_per_concurrency_id.values() for e in q.queue]
        running = [e for job in queue.active_jobs if job for e in job]
        sessions: Counter[str] = Counter()
        addresses: Counter[str] = Counter()
        for event in waiting + running:
            sessions[event.session_hash] += 1
            addresses[client_address(event.request, self.trusted_proxies)] += 1
        in_session = sessions[session] + self._joining[("session", session)]
        from_address = addresses[address] + self._joining[("address", address)]
        if in_session >= self.per_session or from_address >= self.per_address:
            self.stats["refused_busy"] += 1
            cap = self.per_session if in_session >= self.per_session else self.per_address
            raise HTTPException(
                status_code=429,
                detail=f"too many requests at once: {cap} of yours are already waiting or "
                "running; wait for one to finish, then try again",
                headers={"Retry-After": str(RETRY_SECONDS)},
            )


def with_defaults(fn: Any, data: Any) -> Any:
    """``data`` with the trailing inputs it leaves out filled in with their parameters' defaults
    (when every one left out has a default); anything else as it is."""
    if not isinstance(data, list) or len(data) >= len(fn.inputs):
        return data
    try:
        parameters = [
            p
            for p in inspect.signature(fn.fn).parameters.values()
            if p.name not in ("self", "progress")
        ][: len(fn.inputs)]
    except (TypeError, ValueError):
        return data
    missing = parameters[len(data) :]
    if len(parameters) < len(fn.inputs) or any(p.default is p.empty for p in missing):
        return data
    return data + [p.default for p in missing]


def _parameter_names(fn: Any) -> list[str]:
    """The handler's parameter names (the API's), for messages."""
    try:
        return [p for p in inspect.signature(fn.fn).parameters if p not in ("self", "progress")]
    except (TypeError, ValueError):
        return []
