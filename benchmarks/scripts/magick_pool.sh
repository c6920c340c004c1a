#!/usr/bin/env bash
# Peer: 2x2 pooling of one image with ImageMagick 6.   magick_pool.sh CONVERT MODE QUALITY IN OUT
#   avg: `-scale 50%`, a box average of each 2x2 block.
#   max: `-morphology Dilate Rectangle:2x2+0+0` (the max of each pixel's 2x2 block to the lower
#        right) then `-filter point -resize 50%`, which keeps each block's top-left pixel.
# CONVERT is the binary (Debian: /usr/bin/convert-im6.q16).
set -euo pipefail
convert=$1 mode=$2 quality=$3 src=$4 dst=$5
case $mode in
  avg) exec "$convert" "$src" -scale 50% -quality "$quality" "$dst" ;;
  max) exec "$convert" "$src" -morphology Dilate Rectangle:2x2+0+0 -filter point -resize 50% \
         -quality "$quality" "$dst" ;;
  *) echo "magick_pool.sh: unknown mode $mode" >&2; exit 2 ;;
esac
