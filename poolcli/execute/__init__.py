"""Running a plan: which engine and device (``engines``, ``devices``), the memory budget and the
choice between a whole-image and a tiled run (``memory``, ``tiling``), the run itself with its
timings (``run``), and the quantizer's policy for image outputs (``quantize``)."""
