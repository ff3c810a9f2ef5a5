"""Writes the odd images the image crate cannot encode itself (tests/bad_input.rs makes the rest):
a CMYK JPEG, a progressive JPEG and a palette PNG, each 8x8. Run: python make_images.py"""
from PIL import Image

rgb = Image.new("RGB", (8, 8))
rgb.putdata([(32 * (i % 8), 32 * (i // 8), 128) for i in range(64)])
rgb.convert("CMYK").save("cmyk.jpg", quality=90)
rgb.save("progressive.jpg", quality=90, progressive=True)
rgb.convert("P", palette=Image.ADAPTIVE, colors=16).save("palette.png")
