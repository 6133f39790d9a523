"""The files ``clipmat video`` writes play in a browser (Debian's Chromium, headless): the WebM's
alpha is transparent where the matte is 0, the MP4 shows its colours."""

import base64
from pathlib import Path

import numpy as np
import pytest

from clipmat.video.codec import VideoWriter

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--autoplay-policy=no-user-gesture-required",
]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium"
    ),
]

# Play the clip, wait for a frame, draw it on a canvas and read two pixels (RGBA).
PLAY = """async (src) => {
  const v = document.createElement('video');
  v.muted = true; v.src = src; document.body.appendChild(v);
  try {
    await new Promise((ok, bad) => {
      v.onloadeddata = ok; v.onerror = () => bad('error ' + (v.error && v.error.code));
      setTimeout(() => bad('timeout'), 10000);
    });
    await v.play();
    await new Promise(ok => v.requestVideoFrameCallback(() => ok()));
    v.pause();
  } catch (e) { return {error: String(e)}; }
  const c = document.createElement('canvas');
  c.width = v.videoWidth; c.height = v.videoHeight;
  const g = c.getContext('2d'); g.drawImage(v, 0, 0);
  const at = (x, y) => Array.from(g.getImageData(x, y, 1, 1).data);
  return {size: [v.videoWidth, v.videoHeight], left: at(10, 30), right: at(80, 30)};
}"""


def test_the_transparent_webm_and_the_mp4_play_in_chromium(tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api")
    rgba = np.zeros((64, 96, 4), np.uint8)
    rgba[..., 0], rgba[:, :48, 3] = 255, 255  # red; opaque on the left half only
    rgb = np.zeros((64, 96, 3), np.uint8)
    rgb[..., 1] = 200
    files = {"webm": tmp_path / "clip.webm", "mp4": tmp_path / "clip.mp4"}
    for kind, image in (("webm", rgba), ("mp4", rgb)):
        with VideoWriter(files[kind], (64, 96), 12, alpha=kind == "webm") as writer:
            for _ in range(6):
                writer.write(image)
    seen = {}
    with sync_api.sync_playwright() as play:
        browser = play.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        page = browser.new_page()
        for kind, path in files.items():
            data = base64.b64encode(path.read_bytes()).decode()
            seen[kind] = page.evaluate(PLAY, f"data:video/{kind};base64,{data}")
        browser.close()
    webm, mp4 = seen["webm"], seen["mp4"]
    assert webm.get("size") == [96, 64], webm
    assert webm["left"][3] == 255 and webm["left"][0] > 240  # opaque red
    assert webm["right"][3] == 0  # transparent
    assert mp4.get("size") == [96, 64] and abs(mp4["left"][1] - 200) < 8, mp4
