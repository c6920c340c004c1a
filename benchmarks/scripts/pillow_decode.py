"""The physical floor: decode each input and write nothing (no pooling, no encoding).

Every tool here must at least decode its input; with 2 threads this is the most images per
second any of them can reach on the machine, so a target above it cannot be met by pooling faster.
"""

from _common import arguments, run
from PIL import Image


def main() -> None:
    args = arguments(__doc__.splitlines()[0])

    def process(src, dst):
        with Image.open(src) as image:
            image.load()

    run(process, args, make_outputs=False)


if __name__ == "__main__":
    main()
