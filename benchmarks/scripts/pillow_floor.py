"""The floor: decode each input and encode a quarter-size image, with no pooling arithmetic.

The quarter-size image is a crop (a memcpy of a quarter of the pixels), so this does the same
decode and encode work as 2x2 pooling and nothing else; no pooling tool can beat it by much.
"""

from _common import arguments, run, save
from PIL import Image


def main() -> None:
    args = arguments(__doc__.splitlines()[0])

    def process(src, dst):
        with Image.open(src) as image:
            image.load()
            save(image.crop((0, 0, image.width // 2, image.height // 2)), dst, args.quality)

    run(process, args)


if __name__ == "__main__":
    main()
