#!/bin/sh
# Bounded libFuzzer smoke run: FUZZER SEED_DIR DICT [libFuzzer options...].
# New inputs go to a temporary corpus, never into the seed folder of the source tree.
set -eu
fuzzer=$1 seeds=$2 dict=$3
shift 3
corpus=$(mktemp -d)
trap 'rm -rf "$corpus"' EXIT
"$fuzzer" "$corpus" "$seeds" -dict="$dict" -print_final_stats=1 "$@"
