"""Draw custom_components/carhub/brand/icon.png (256x256) with Pillow.

Run: .venv/bin/python scripts/make_icon.py. Kept in the repo so the icon can
be regenerated and reviewed instead of being an opaque binary.
"""

from pathlib import Path

from PIL import Image, ImageDraw

SIZE = 256
OUT = Path(__file__).resolve().parents[1] / "custom_components" / "carhub" / "brand" / "icon.png"


def draw() -> Image.Image:
    img = Image.new("RGBA", (SIZE, SIZE), (0, 0, 0, 0))
    d = ImageDraw.Draw(img)
    blue, white = (3, 169, 244, 255), (255, 255, 255, 255)
    d.rounded_rectangle((8, 8, SIZE - 8, SIZE - 8), radius=48, fill=blue)
    # Car body and cabin.
    d.rounded_rectangle((40, 120, 216, 176), radius=18, fill=white)
    d.polygon([(72, 124), (96, 80), (160, 80), (184, 124)], fill=white)
    d.polygon([(88, 118), (104, 90), (124, 90), (124, 118)], fill=blue)
    d.polygon([(132, 118), (132, 90), (152, 90), (168, 118)], fill=blue)
    # Wheels.
    for cx in (84, 172):
        d.ellipse((cx - 22, 156, cx + 22, 200), fill=(1, 87, 155, 255))
        d.ellipse((cx - 9, 169, cx + 9, 187), fill=white)
    # Link waves above the roof: the car talks to the home.
    for r in (22, 38):
        d.arc((128 - r, 56 - r, 128 + r, 56 + r), start=220, end=320, fill=white, width=7)
    return img


if __name__ == "__main__":
    OUT.parent.mkdir(parents=True, exist_ok=True)
    draw().save(OUT, optimize=True)
    print(f"wrote {OUT}")
