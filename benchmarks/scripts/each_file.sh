#!/usr/bin/env bash
# Runs a one-image command on every *.jpg of a folder, as a shell user would.
#   each_file.sh JOBS SRC_DIR DST_DIR COMMAND [ARGS...]   runs   COMMAND ARGS... SRC_DIR/f DST_DIR/f
# JOBS 1: a plain `for` loop; JOBS > 1: `xargs -P JOBS`, that many commands at once.
set -euo pipefail
jobs=$1
mkdir -p "$3"
src=$(cd "$2" && pwd) dst=$(cd "$3" && pwd)
shift 3
cd "$src"
if [ "$jobs" -le 1 ]; then
  for f in *.jpg; do "$@" "$src/$f" "$dst/$f"; done
else
  printf '%s\0' *.jpg | xargs -0 -P "$jobs" -I{} "$@" "$src/{}" "$dst/{}"
fi
