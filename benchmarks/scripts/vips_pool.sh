#!/usr/bin/env bash
# Peer: 2x2 pooling of one image with the vips command line.   vips_pool.sh MODE QUALITY IN OUT
#   avg: `vips shrink IN OUT 2 2`, a box average of each 2x2 block.
#   max: vips has no strided max pool, so: a 2x2 rank filter (index 3 = the largest of the 4),
#        shifted one pixel up-left (vips anchors an even window so that (x, y) is its lower-right
#        cell) and subsampled by 2. Three commands with .v intermediates, as a shell user would.
set -euo pipefail
mode=$1 quality=$2 src=$3 dst=$4
case $dst in *.jpg | *.jpeg) dst="$dst[Q=$quality]" ;; esac
case $mode in
  avg) exec vips shrink "$src" "$dst" 2 2 ;;
  max)
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    vips rank "$src" "$tmp/rank.v" 2 2 3
    vips embed --extend copy -- "$tmp/rank.v" "$tmp/shifted.v" -1 -1 \
      "$(vipsheader -f width "$src")" "$(vipsheader -f height "$src")"
    vips subsample "$tmp/shifted.v" "$dst" 2 2 ;;
  *) echo "vips_pool.sh: unknown mode $mode" >&2; exit 2 ;;
esac
