"""Peer: 2x2 average pooling with Pillow's ``Image.reduce(2)`` (a box filter over 2x2 blocks)."""

from _common import arguments, run, save
from PIL import Image


def main() -> None:
    args = arguments(__doc__)

    def process(src, dst):
        with Image.open(src) as image:
            save(image.reduce(2), dst, args.quality)

    run(process, args)


if __name__ == "__main__":
    main()
