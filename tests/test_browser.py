"""The page in a real browser: Debian's Chromium driven by Playwright against the app on 127.0.0.1.

Each test does what a person does (pick an example, press a button, drag a slider, click the map) and
checks what appears. Screenshots of every tab are written to docs/screenshots/ for the README.
"""

import io
import shutil
import socket
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SHOTS = Path(__file__).resolve().parent.parent / "docs" / "screenshots"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--disable-quic"]



@pytest.fixture(scope="module")
def server():
    import app

    assert Path(CHROMIUM).exists(), "browser tests need Debian's Chromium: apt-get install -y chromium"
    demo = app.create_demo(["mnist", "dsprites"], "cpu")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, **app.LAUNCH_OPTIONS)
    yield f"http://127.0.0.1:{port}"
    demo.close()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser, server):
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    pg = ctx.new_page()
    pg.set_default_timeout(30_000)
    pg.goto(server + "/", wait_until="load")
    pg.wait_for_selector("text=Reconstruct")
    yield pg
    ctx.close()


def image_at(page, selector: str) -> Image.Image:
    """The picture an <img> currently shows, fetched as the browser would."""
    src = page.locator(selector).first.get_attribute("src")
    assert src, f"no image at {selector}"
    return Image.open(io.BytesIO(httpx.get(src).content)).convert("L")


def not_blank(img: Image.Image) -> bool:
    a = np.asarray(img, dtype=np.float32)
    return a.std() > 10 and a.max() > 100


def shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def pick_example(page, nth: int = 0, upload_label: str = "Upload an image") -> None:
    """Click an example (a thumbnail, or a table row for pairs) and wait until the upload box shows it."""
    page.locator("button.gallery-item:visible, table tbody tr:visible").nth(nth).click()
    page.wait_for_selector(label_img(upload_label), state="visible")


def label_img(label: str) -> str:
    return f"[data-testid='image']:has-text('{label}') img, .block:has(label:has-text('{label}')) img"


def test_reconstruct_tab(page):
    pick_example(page)  # the first example digit
    page.get_by_role("button", name="Reconstruct", exact=True).click()
    page.wait_for_selector("text=PSNR")
    page.wait_for_selector(label_img("μ ± σ and KL per latent dimension"), state="visible")  # the chained explanation
    for label in ("As the model sees it", "Squared error per pixel"):  # also from the chained explanation
        page.wait_for_selector(label_img(label), state="visible")
    assert not_blank(image_at(page, label_img("As the model sees it")))
    page.wait_for_function("!document.body.innerText.includes('processing')")
    assert not_blank(image_at(page, label_img("Reconstruction: decode(μ)")))
    assert not_blank(image_at(page, label_img("PCA baseline")))
    posterior = page.locator(".block:has(label:has-text('Posterior samples')) img")
    assert posterior.count() == 8
    assert "ELBO" in page.locator("body").inner_text()
    page.get_by_text("How it works").click()
    page.wait_for_selector("text=reparameterization", state="visible")
    shot(page, "reconstruct")


def test_sample_tab(page):
    page.get_by_role("tab", name="Sample").click()
    page.get_by_role("button", name="Sample from the prior").click()
    samples = label_img("Samples: decode(z)")
    page.wait_for_selector(samples, state="visible")
    grid = image_at(page, samples)
    assert not_blank(grid) and grid.width > grid.height  # the slider's default 32: four rows of 8
    shot(page, "sample")


def test_interpolate_tab(page):
    page.get_by_role("tab", name="Interpolate").click()
    pick_example(page, 0, "Image B")  # an example pair
    page.get_by_role("button", name="Interpolate", exact=True).click()
    frames = label_img("Frames from A to B")
    page.wait_for_selector(frames, state="visible")
    sheet = image_at(page, frames)
    assert not_blank(sheet) and sheet.width > 3 * sheet.height  # the Steps slider's default 10: rows of 8 and 2
    anim = label_img("Animation")
    page.wait_for_selector(anim, state="visible")  # the GIF itself is shown, not only its label
    assert not_blank(image_at(page, anim))
    shot(page, "interpolate")


def test_latent_sliders_tab(page):
    page.get_by_role("tab", name="Latent sliders").click()
    pick_example(page, 3, "Start from an image")
    page.get_by_role("button", name="Use this image's μ").click()
    page.wait_for_selector("text=μ of the image")
    out = label_img("decode(z)")
    page.wait_for_timeout(1500)
    before = image_at(page, out)
    slider = page.locator("input[type='range']:visible").first
    box = slider.bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] / 2)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.95, box["y"] + box["height"] / 2, steps=8)
    page.mouse.up()
    page.wait_for_timeout(2500)
    after = image_at(page, out)
    assert not_blank(after)
    assert np.abs(np.asarray(after, np.float32) - np.asarray(before, np.float32)).mean() > 1.0  # the digit changed
    page.get_by_role("button", name="Traversal grid of the top dimensions").click()
    page.wait_for_timeout(3000)
    shot(page, "sliders")


def test_dsprites_sliders_carry_the_factor_each_dimension_tracks(page):
    from vae_demo import load_vae
    from vae_demo.knowledge import knowledge

    names = knowledge(load_vae("dsprites")).factor_names()  # from the evaluation stored with the checkpoint
    assert {"x position", "y position", "scale"} <= {n.split(" (")[0] for n in names.values()}
    page.get_by_label("Model").first.click()
    page.get_by_role("option", name="dsprites").click()
    page.wait_for_selector("text=trained on dsprites")  # the summary line of the model now picked
    page.get_by_role("tab", name="Latent sliders").click()
    for d, name in names.items():
        page.wait_for_selector(f"text=z{d} · {name}")
    page.get_by_role("button", name="Traversal grid of the top dimensions").click()
    grid = label_img("Traversal: each row sets one dimension")
    page.wait_for_selector(grid, state="visible")
    page.wait_for_timeout(1500)
    assert not_blank(image_at(page, grid))
    shot(page, "sliders_dsprites")


def test_latent_map_tab(page):
    page.get_by_role("tab", name="Latent map").click()
    page.wait_for_selector("#map-image img")
    box = page.locator("#map-image img").bounding_box()
    page.mouse.click(box["x"] + box["width"] * 0.35, box["y"] + box["height"] * 0.45)
    page.wait_for_timeout(2500)
    assert not_blank(image_at(page, label_img("decode(point)")))
    shot(page, "latent_map")


def test_errors_are_shown_in_the_page(page, tmp_path):
    bad = tmp_path / "notes.png"
    bad.write_text("this is not an image")
    page.locator("input[type='file']").first.set_input_files(str(bad))
    page.wait_for_timeout(1000)
    page.get_by_role("button", name="Reconstruct", exact=True).click()
    page.wait_for_selector("text=not an image", timeout=15_000)


def test_phone_width_and_keyboard(browser, server):
    ctx = browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=2)
    pg = ctx.new_page()
    pg.goto(server + "/", wait_until="load")
    pg.wait_for_selector("text=Reconstruct")
    width = pg.evaluate("document.documentElement.scrollWidth")
    assert width <= 400  # no sideways scrolling on a phone
    pick_example(pg)
    btn = pg.get_by_role("button", name="Reconstruct", exact=True)
    btn.focus()
    pg.keyboard.press("Enter")  # usable without a mouse
    pg.wait_for_selector("text=PSNR")
    pg.wait_for_function("!document.body.innerText.includes('processing')")
    shot(pg, "phone")
    ctx.close()
