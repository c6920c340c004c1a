"""Peer: the plain torch script a PyTorch user would write (Pillow decode, float, F.*_pool2d,
round, Pillow encode), one file after another; torch's own intra-op threads do the pooling."""

import numpy as np
import torch
import torch.nn.functional as F
from _common import arguments, run, save
from PIL import Image

POOLS = {"avg": F.avg_pool2d, "max": F.max_pool2d}


def main() -> None:
    args = arguments(__doc__.splitlines()[0], modes=tuple(POOLS))
    pool = POOLS[args.mode]

    def process(src, dst):
        with Image.open(src) as image:
            pixels = np.array(image)
        if pixels.ndim == 2:
            pixels = pixels[:, :, None]
        x = torch.from_numpy(pixels).permute(2, 0, 1).unsqueeze(0).float()
        y = pool(x, kernel_size=2, stride=2).round().clamp(0, 255).to(torch.uint8)
        out = y[0].permute(1, 2, 0).contiguous().numpy()
        save(Image.fromarray(out.squeeze(2) if out.shape[2] == 1 else out), dst, args.quality)

    run(process, args)


if __name__ == "__main__":
    main()
