#!/usr/bin/env bash
# Peer: 2x2 pooling of a whole folder in one ImageMagick 6 process.
#   mogrify_pool.sh MOGRIFY MODE QUALITY SRC_DIR DST_DIR     (the same operators as magick_pool.sh)
set -euo pipefail
mogrify=$1 mode=$2 quality=$3 src=$4 dst=$5
mkdir -p "$dst"
case $mode in
  avg) exec "$mogrify" -path "$dst" -scale 50% -quality "$quality" "$src"/*.jpg ;;
  max) exec "$mogrify" -path "$dst" -morphology Dilate Rectangle:2x2+0+0 -filter point -resize 50% \
         -quality "$quality" "$src"/*.jpg ;;
  *) echo "mogrify_pool.sh: unknown mode $mode" >&2; exit 2 ;;
esac
