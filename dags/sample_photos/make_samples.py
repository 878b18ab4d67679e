"""Draw the sample listing photos the example pipelines enhance (run once; outputs are committed).

Deliberately dull: low contrast and a grey-blue cast, so the sandbox's enhancement is visible.
Run: python dags/sample_photos/make_samples.py
"""

from __future__ import annotations

import random
from pathlib import Path

from PIL import Image, ImageDraw, ImageEnhance, ImageFilter

HERE = Path(__file__).resolve().parent
SIZE = (640, 427)


def scene(seed: int, wall: tuple[int, int, int], roof: tuple[int, int, int]) -> Image.Image:
    rnd = random.Random(seed)
    img = Image.new("RGB", SIZE)
    draw = ImageDraw.Draw(img)
    for y in range(SIZE[1]):  # sky and lawn gradients
        if y < 260:
            t = y / 260
            draw.line([(0, y), (SIZE[0], y)], fill=(int(120 + 60 * t), int(160 + 40 * t), int(215 - 10 * t)))
        else:
            t = (y - 260) / (SIZE[1] - 260)
            draw.line([(0, y), (SIZE[0], y)], fill=(int(70 + 30 * t), int(130 + 20 * t), int(60 + 10 * t)))
    for _ in range(4):  # clouds
        x, y = rnd.randint(0, SIZE[0]), rnd.randint(20, 120)
        draw.ellipse([x - 60, y - 20, x + 60, y + 20], fill=(236, 240, 245))
    x0 = rnd.randint(120, 200)
    draw.rectangle([x0, 170, x0 + 300, 320], fill=wall)
    draw.polygon([(x0 - 20, 175), (x0 + 150, 90), (x0 + 320, 175)], fill=roof)
    draw.rectangle([x0 + 130, 240, x0 + 175, 320], fill=(90, 60, 40))
    for wx in (x0 + 30, x0 + 215):
        draw.rectangle([wx, 200, wx + 55, 250], fill=(170, 200, 230), outline=(250, 250, 250), width=4)
    for tx in (40, 560):  # trees
        draw.rectangle([tx + 15, 250, tx + 28, 330], fill=(80, 55, 30))
        draw.ellipse([tx - 20, 170, tx + 65, 270], fill=(40, 110, 50))
    return img.filter(ImageFilter.GaussianBlur(0.6))


def dull(img: Image.Image) -> Image.Image:
    img = ImageEnhance.Contrast(img).enhance(0.55)
    img = ImageEnhance.Color(img).enhance(0.6)
    grey = Image.new("RGB", img.size, (120, 125, 140))
    return Image.blend(img, grey, 0.18)


def exposure(img: Image.Image, ev: int) -> Image.Image:
    return ImageEnhance.Brightness(img).enhance(2.0 ** (ev / 2))


def save(img: Image.Image, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, "JPEG", quality=82, optimize=True)


def main() -> None:
    listing = {
        "front": (11, (200, 190, 170), (120, 60, 50)),
        "side": (12, (180, 185, 190), (70, 70, 80)),
        "back-garden": (13, (210, 200, 160), (110, 80, 60)),
        "street-view": (14, (190, 170, 160), (90, 50, 45)),
    }
    for name, (seed, wall, roof) in listing.items():
        save(dull(scene(seed, wall, roof)), HERE / "listing-42" / f"{name}.jpg")
    for room, seed in (("living", 21), ("bedroom", 22)):
        base = dull(scene(seed, (205, 195, 180), (100, 70, 60)))
        for ev, label in ((-2, "m2"), (0, "0"), (2, "p2")):
            save(exposure(base, ev), HERE / "hdr" / f"{room}_{label}EV.jpg")
    for shoot, seeds in (("shoot-a", (31, 32)), ("shoot-b", (41, 42))):
        for i, seed in enumerate(seeds, start=1):
            save(
                dull(scene(seed, (195, 185, 175), (105, 65, 55))), HERE / "shoots" / shoot / f"photo-{i}.jpg"
            )


if __name__ == "__main__":
    main()
