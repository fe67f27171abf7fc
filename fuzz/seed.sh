#!/usr/bin/env bash
# Fill fuzz/corpus/<target>/ with seeds from the repo's testdata/ and the shared corpus
# (../shared/corpus beside the repo). Seeds are not committed; run this before `cargo fuzz run`.
# Files are recognised by magic, not name. Captures over 64 KiB are cut to their first 16 KiB
# (a truncated capture is a good seed too, and small seeds keep libFuzzer fast).
set -euo pipefail

FUZZ=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$FUZZ/.." && pwd)
SOURCES=("$ROOT/testdata" "$ROOT/../shared/corpus")
WHOLE_MAX=$((64 * 1024))
CUT=$((16 * 1024))

for t in pcap_reader pcapng_reader gzip_tar_reader; do
    mkdir -p "$FUZZ/corpus/$t"
done
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

# emit TARGET PREFIX_HEX FILE: write (control byte +) file contents as a seed named by its hash.
emit() {
    local target=$1 prefix=$2 file=$3 out="$TMP/seed"
    {
        if [ -n "$prefix" ]; then printf "\\x$prefix"; fi
        local size
        size=$(stat -c %s "$file")
        if [ "$size" -gt "$WHOLE_MAX" ]; then head -c "$CUT" "$file"; else cat "$file"; fi
    } >"$out"
    local sum
    sum=$(sha1sum "$out" | cut -c1-16)
    mv "$out" "$FUZZ/corpus/$target/seed-$sum"
}

magic() { od -An -tx1 -N4 "$1" | tr -d ' \n'; }

# u32 at offset 4 (a pcapng block length), in the file's byte order.
block_len() {
    local hex
    hex=$(od -An -tx1 -j4 -N4 "$1" | tr -d ' \n')
    if [ "$2" = be ]; then echo $((16#$hex)); else
        echo $((16#${hex:6:2}${hex:4:2}${hex:2:2}${hex:0:2}))
    fi
}

small_pcaps=()
for src in "${SOURCES[@]}"; do
    [ -d "$src" ] || { echo "seed.sh: $src not found, skipped" >&2; continue; }
    while IFS= read -r -d '' f; do
        [ "$(stat -c %s "$f")" -ge 4 ] || continue
        m=$(magic "$f")
        case "$m" in
        d4c3b2a1 | a1b2c3d4 | 4d3cb2a1 | a1b23c4d | 34cdb2a1 | a1b2cd34)
            emit pcap_reader "" "$f"
            emit gzip_tar_reader 01 "$f"
            if [ "$(stat -c %s "$f")" -le 4096 ] && [ "${#small_pcaps[@]}" -lt 8 ]; then
                small_pcaps+=("$f")
            fi
            ;;
        0a0d0d0a)
            emit pcap_reader "" "$f"
            emit pcapng_reader 00 "$f"
            # Also the file after its own section header, behind the target's SHB + IDB.
            bom=$(od -An -tx1 -j8 -N4 "$f" | tr -d ' \n')
            case "$bom" in
            4d3c2b1a) order=le ctl=01 ;;
            1a2b3c4d) order=be ctl=03 ;;
            *) continue ;;
            esac
            len=$(block_len "$f" "$order")
            if [ "$len" -ge 28 ] && [ "$len" -lt "$(stat -c %s "$f")" ]; then
                tail -c +$((len + 1)) "$f" >"$TMP/body"
                emit pcapng_reader "$ctl" "$TMP/body"
            fi
            ;;
        1f8b*)
            emit pcap_reader "" "$f"
            emit gzip_tar_reader 00 "$f"
            ;;
        esac
    done < <(find "$src" -type f ! -name '*.tshark' -print0 | sort -z)
done

# Tar seeds made here: plain, gzipped, with a directory, a non-capture and a gzipped member.
if [ "${#small_pcaps[@]}" -gt 0 ]; then
    mkdir -p "$TMP/tree/dir"
    i=0
    for f in "${small_pcaps[@]}"; do
        cp "$f" "$TMP/tree/dir/m$i.pcap"
        i=$((i + 1))
    done
    echo "not a capture" >"$TMP/tree/readme.txt"
    gzip -c "$TMP/tree/dir/m0.pcap" >"$TMP/tree/dir/z.pcap.gz"
    tar -C "$TMP/tree" -cf "$TMP/one.tar" dir/m0.pcap
    tar -C "$TMP/tree" -cf "$TMP/all.tar" .
    for t in one all; do
        emit gzip_tar_reader 00 "$TMP/$t.tar"
        emit gzip_tar_reader 01 "$TMP/$t.tar"
        emit gzip_tar_reader 02 "$TMP/$t.tar"
        gzip -c "$TMP/$t.tar" >"$TMP/$t.tar.gz"
        emit gzip_tar_reader 00 "$TMP/$t.tar.gz"
    done
fi

for t in pcap_reader pcapng_reader gzip_tar_reader; do
    echo "$t: $(find "$FUZZ/corpus/$t" -type f | wc -l) files, $(du -sh "$FUZZ/corpus/$t" | cut -f1)"
done
