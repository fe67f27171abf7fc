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

# HTTP exchanges for http_parser, in its input format: a mode byte (emit's prefix), then steps
# of [op][length][bytes] where op 0 is client data and 1 server data.
mkdir -p "$FUZZ/corpus/http_parser"
# segments SIDE FILE: append FILE's bytes to $TMP/http as data steps of at most 200 bytes.
segments() {
    local side=$1 file=$2 size at=0 n
    size=$(stat -c %s "$file")
    while [ "$at" -lt "$size" ]; do
        n=$((size - at))
        if [ "$n" -gt 200 ]; then n=200; fi
        printf "\\x$(printf %02x "$side")\\x$(printf %02x "$n")" >>"$TMP/http"
        tail -c +$((at + 1)) "$file" | head -c "$n" >>"$TMP/http"
        at=$((at + n))
    done
}
# http_seed MODE_HEX SIDE TEXT [SIDE TEXT...]: TEXT is printf-escaped.
http_seed() {
    local mode=$1
    shift
    : >"$TMP/http"
    while [ "$#" -ge 2 ]; do
        printf "$2" >"$TMP/part"
        segments "$1" "$TMP/part"
        shift 2
    done
    emit http_parser "$mode" "$TMP/http"
}
http_seed 00 0 'GET /a HTTP/1.1\r\nHost: x\r\n\r\nHEAD /b HTTP/1.1\r\n\r\n' \
    1 'HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabcHTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n'
http_seed 01 0 'POST /c HTTP/1.1\r\nExpect: 100-continue\r\nTransfer-Encoding: chunked\r\n\r\n' \
    1 'HTTP/1.1 100 Continue\r\n\r\n' 0 '4;x=y\r\nbody\r\n0\r\nT: 1\r\n\r\n' \
    1 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n'
http_seed 00 0 'GET /chat HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n' \
    1 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n\x01\x03fra\x89\x00\x80\x02gm' \
    0 '\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58\x88\x82\x01\x02\x03\x04\x02\xea'
http_seed 01 0 'CONNECT example.com:443 HTTP/1.1\r\n\r\n' 1 'HTTP/1.1 200 Established\r\n\r\n' \
    0 '\x16\x03\x01\x00\x05hello'
printf 'compressed body compressed body compressed body' | gzip -c >"$TMP/gz"
{
    printf 'HTTP/1.0 200 OK\r\nContent-Encoding: gzip\r\n\r\n'
    cat "$TMP/gz"
} >"$TMP/gzresp"
: >"$TMP/http"
printf 'GET /gz HTTP/1.0\r\n\r\n' >"$TMP/part"
segments 0 "$TMP/part"
segments 1 "$TMP/gzresp"
emit http_parser 02 "$TMP/http"

# tap_control: control-plane lines and tap configurations (the example and the tests' shapes).
mkdir -p "$FUZZ/corpus/tap_control"
printf 'ping\n{"cmd":"subscribe","cats":["session","flow"],"req":1}\nget_session 7\nclose_session x\n' \
    >"$FUZZ/corpus/tap_control/seed-commands"
(cd "$ROOT" && cargo run -q -- tap --example-config) >"$FUZZ/corpus/tap_control/seed-example" ||
    rm -f "$FUZZ/corpus/tap_control/seed-example"
printf '{ io: { input: { capture: {\n# a comment\n local_ip: "::1", remote_ip: "::2", remote_port: 21,\n bpf-filter: "port {remote_port}" } },\n output: { listner: { enabled: true, port_range_start: 0, port_range_end: 0 } } } }\n' \
    >"$FUZZ/corpus/tap_control/seed-config"

for t in pcap_reader pcapng_reader gzip_tar_reader http_parser tap_control; do
    echo "$t: $(find "$FUZZ/corpus/$t" -type f | wc -l) files, $(du -sh "$FUZZ/corpus/$t" | cut -f1)"
done
