# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_gophercap_global_optspecs
    string join \n v/verbose q/quiet log-format= config= h/help V/version
end

function __fish_gophercap_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_gophercap_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_gophercap_using_subcommand
    set -l cmd (__fish_gophercap_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c gophercap -n "__fish_gophercap_needs_command" -l log-format -d 'Log line format on stderr' -r -f -a "text\t''
json\t''"
complete -c gophercap -n "__fish_gophercap_needs_command" -l config -d 'TOML file of option defaults: top-level keys for global options, a table per subcommand (`[map]`) for its options; the command line overrides it' -r -F
complete -c gophercap -n "__fish_gophercap_needs_command" -s v -l verbose -d 'More log output (-v info, -vv debug, -vvv trace)'
complete -c gophercap -n "__fish_gophercap_needs_command" -s q -l quiet -d 'Only errors on stderr; no progress bar or summary line'
complete -c gophercap -n "__fish_gophercap_needs_command" -s h -l help -d 'Print help'
complete -c gophercap -n "__fish_gophercap_needs_command" -s V -l version -d 'Print version'
complete -c gophercap -n "__fish_gophercap_needs_command" -f -a "map" -d 'Metadata of every capture in files, folders and tarballs, in parallel, as JSON'
complete -c gophercap -n "__fish_gophercap_needs_command" -f -a "flows" -d 'The flow table: per-packet lines, TCP state and analysis, exported as JSON or CSV'
complete -c gophercap -n "__fish_gophercap_needs_command" -f -a "http-trace" -d 'HTTP/1.x and WebSocket messages from reassembled TCP, as JSON lines, files or POSTs'
complete -c gophercap -n "__fish_gophercap_needs_command" -f -a "replay" -d 'Replay many captures on one global timeline, onto an interface or into a file'
complete -c gophercap -n "__fish_gophercap_needs_command" -f -a "tap" -d 'Reassembled TCP sessions forwarded to sockets and captures, with a control plane'
complete -c gophercap -n "__fish_gophercap_needs_command" -f -a "tar-extract" -d 'Stream chosen captures out of a (gzipped) tarball in one pass, in constant memory'
complete -c gophercap -n "__fish_gophercap_needs_command" -f -a "list-interfaces" -d 'Interfaces that live capture can open'
complete -c gophercap -n "__fish_gophercap_needs_command" -f -a "webhook" -d 'The Kubernetes admission webhook that injects the http-trace sidecar (and its certs)'
complete -c gophercap -n "__fish_gophercap_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c gophercap -n "__fish_gophercap_using_subcommand map" -l dir-src -d 'A folder to map (GopherCap\'s flag; the same as naming it as an input)' -r -F
complete -c gophercap -n "__fish_gophercap_using_subcommand map" -l file-suffix -d 'Only files (and tar members) whose name ends with this' -r
complete -c gophercap -n "__fish_gophercap_using_subcommand map" -l file-regexp -d 'Only files (and tar members) whose full path matches this regular expression' -r
complete -c gophercap -n "__fish_gophercap_using_subcommand map" -l file-workers -d 'Files read in parallel (default: one per core)' -r
complete -c gophercap -n "__fish_gophercap_using_subcommand map" -l dump-json -d 'Write the catalog document to this file (what `replay` reads)' -r -F
complete -c gophercap -n "__fish_gophercap_using_subcommand map" -l format -d 'What to print on stdout (default: table on a terminal, else json; nothing extra with --dump-json)' -r -f -a "table\t''
json\t''
jsonl\t''
csv\t''"
complete -c gophercap -n "__fish_gophercap_using_subcommand map" -s f -l filter -d 'Only count packets that match this BPF expression' -r
complete -c gophercap -n "__fish_gophercap_using_subcommand map" -l shard -d 'Map only shard K of N (K from 0 to N-1, as Kubernetes\' JOB_COMPLETION_INDEX): the inputs (files, whole tarballs) whose path hashes to K. The document says which shard it is, for --merge' -r
complete -c gophercap -n "__fish_gophercap_using_subcommand map" -l log-format -d 'Log line format on stderr' -r -f -a "text\t''
json\t''"
complete -c gophercap -n "__fish_gophercap_using_subcommand map" -l config -d 'TOML file of option defaults: top-level keys for global options, a table per subcommand (`[map]`) for its options; the command line overrides it' -r -F
complete -c gophercap -n "__fish_gophercap_using_subcommand map" -l update -d 'Reuse entries of the existing --dump-json whose file size and mtime are unchanged'
complete -c gophercap -n "__fish_gophercap_using_subcommand map" -l merge -d 'The inputs are the shard documents of one run (files, or folders of *.json): join them into the document a single run over all the captures writes'
complete -c gophercap -n "__fish_gophercap_using_subcommand map" -s v -l verbose -d 'More log output (-v info, -vv debug, -vvv trace)'
complete -c gophercap -n "__fish_gophercap_using_subcommand map" -s q -l quiet -d 'Only errors on stderr; no progress bar or summary line'
complete -c gophercap -n "__fish_gophercap_using_subcommand map" -s h -l help -d 'Print help'
complete -c gophercap -n "__fish_gophercap_using_subcommand map" -s V -l version -d 'Print version'
complete -c gophercap -n "__fish_gophercap_using_subcommand flows" -s i -l interface -d 'Capture live from this interface instead (Ctrl-C ends it)' -r
complete -c gophercap -n "__fish_gophercap_using_subcommand flows" -s f -l filter -d 'Only packets that match this BPF expression' -r
complete -c gophercap -n "__fish_gophercap_using_subcommand flows" -s c -l count -d 'Stop after this many packets' -r
complete -c gophercap -n "__fish_gophercap_using_subcommand flows" -l flow-timeout-s -d 'End flows idle this many seconds of packet time (0 keeps them to the end)' -r
complete -c gophercap -n "__fish_gophercap_using_subcommand flows" -l max-flows -d 'Keep at most this many flows; the least recently seen is evicted (0: unlimited, as in NetScope and the config file)' -r
complete -c gophercap -n "__fish_gophercap_using_subcommand flows" -l export-json -d 'Write the flow table as one JSON array, each flow appended as it ends (`-`: stdout)' -r -F
complete -c gophercap -n "__fish_gophercap_using_subcommand flows" -l export-csv -d 'Write the flow table as CSV (NetScope\'s columns first), each flow as it ends (`-`: stdout)' -r -F
complete -c gophercap -n "__fish_gophercap_using_subcommand flows" -l expired-flows-jsonl -d 'Stream each flow as one JSON line when it ends (idle, evicted, replaced or at the end; `-`: stdout)' -r -F
complete -c gophercap -n "__fish_gophercap_using_subcommand flows" -l zeek-conn -d 'Write Zeek\'s conn.log here, each connection as it ends (`-`: stdout)' -r -F
complete -c gophercap -n "__fish_gophercap_using_subcommand flows" -l zeek-format -d 'The form of the Zeek logs: Zeek\'s TSV with its header, or its JSON lines' -r -f -a "tsv\t'Tab-separated with Zeek\'s header lines (zeek-cut reads it)'
json\t'One JSON object per line, as Zeek\'s `LogAscii::use_json` writes it'"
complete -c gophercap -n "__fish_gophercap_using_subcommand flows" -l community-id-seed -d 'The seed of the Community IDs written (sites that compare logs agree on one)' -r
complete -c gophercap -n "__fish_gophercap_using_subcommand flows" -l syn-flood-window-secs -d 'SYN flood: window in seconds' -r
complete -c gophercap -n "__fish_gophercap_using_subcommand flows" -l syn-threshold -d 'SYN flood: SYNs to one ip:port within the window' -r
complete -c gophercap -n "__fish_gophercap_using_subcommand flows" -l unique-src-threshold -d 'SYN flood: distinct sources among them' -r
complete -c gophercap -n "__fish_gophercap_using_subcommand flows" -l syn-flood-cooldown-secs -d 'SYN flood: seconds before the same target alerts again' -r
complete -c gophercap -n "__fish_gophercap_using_subcommand flows" -l port-scan-window-secs -d 'Port scan: window in seconds' -r
complete -c gophercap -n "__fish_gophercap_using_subcommand flows" -l unique-ports-threshold -d 'Port scan: distinct destination ports from one source within the window' -r
complete -c gophercap -n "__fish_gophercap_using_subcommand flows" -l unique-hosts-threshold -d 'Port scan: distinct destination hosts from one source within the window' -r
complete -c gophercap -n "__fish_gophercap_using_subcommand flows" -l port-scan-cooldown-secs -d 'Port scan: seconds before the same source alerts again' -r
complete -c gophercap -n "__fish_gophercap_using_subcommand flows" -l anomaly-memory-mb -d 'Memory the SYN-flood and port-scan detectors may hold, in MiB; past it the least recently active services and sources are let go (and counted)' -r
complete -c gophercap -n "__fish_gophercap_using_subcommand flows" -l snaplen -d 'Live capture: bytes kept per packet' -r
complete -c gophercap -n "__fish_gophercap_using_subcommand flows" -l timeout-ms -d 'Live capture: read timeout in milliseconds' -r
complete -c gophercap -n "__fish_gophercap_using_subcommand flows" -l buffer-size-mb -d 'Live capture: kernel buffer in MiB (0 keeps libpcap\'s default)' -r
complete -c gophercap -n "__fish_gophercap_using_subcommand flows" -l user -d 'Live capture: once the interface is open, run as this user (NAME, UID or UID:GID; started as root), as tcpdump -Z does. Output files opened after it belong to that user' -r
complete -c gophercap -n "__fish_gophercap_using_subcommand flows" -l metrics-addr -d 'Serve Prometheus metrics on /metrics, with /healthz and /readyz (ready once the capture is open), at this address: HOST:PORT, [IPv6]:PORT or :PORT. Off unless given' -r
complete -c gophercap -n "__fish_gophercap_using_subcommand flows" -l alerts-jsonl -d 'Also write each alert as a JSON line here (implies --anomalies)' -r -F
complete -c gophercap -n "__fish_gophercap_using_subcommand flows" -l write-pcap -d 'Write the packets that passed the filter into this pcap' -r -F
complete -c gophercap -n "__fish_gophercap_using_subcommand flows" -l stats-interval-ms -d 'The stats interval in milliseconds' -r
complete -c gophercap -n "__fish_gophercap_using_subcommand flows" -l top-flows -d 'With --stats, list the N flows that moved the most bytes in the interval' -r
complete -c gophercap -n "__fish_gophercap_using_subcommand flows" -l log-format -d 'Log line format on stderr' -r -f -a "text\t''
json\t''"
complete -c gophercap -n "__fish_gophercap_using_subcommand flows" -l config -d 'TOML file of option defaults: top-level keys for global options, a table per subcommand (`[map]`) for its options; the command line overrides it' -r -F
complete -c gophercap -n "__fish_gophercap_using_subcommand flows" -l anomalies -d 'Detect SYN floods and port scans (NetScope\'s rules and defaults) and print alerts'
complete -c gophercap -n "__fish_gophercap_using_subcommand flows" -l no-anomalies -d 'Turn anomaly detection off (overrides a config file)'
complete -c gophercap -n "__fish_gophercap_using_subcommand flows" -l no-syn-flood -d 'No SYN-flood detection'
complete -c gophercap -n "__fish_gophercap_using_subcommand flows" -l no-port-scan -d 'No port-scan detection'
complete -c gophercap -n "__fish_gophercap_using_subcommand flows" -l promiscuous -d 'Live capture: promiscuous mode (the default)'
complete -c gophercap -n "__fish_gophercap_using_subcommand flows" -l no-promiscuous -d 'Live capture: not promiscuous'
complete -c gophercap -n "__fish_gophercap_using_subcommand flows" -l immediate-mode -d 'Live capture: hand over each packet at once'
complete -c gophercap -n "__fish_gophercap_using_subcommand flows" -l no-immediate-mode -d 'Live capture: let libpcap batch packets (the default)'
complete -c gophercap -n "__fish_gophercap_using_subcommand flows" -l hex-dump -d 'After each per-packet line, the first 256 bytes in hex and ASCII'
complete -c gophercap -n "__fish_gophercap_using_subcommand flows" -l no-hex-dump -d 'No hex dump (overrides a config file)'
complete -c gophercap -n "__fish_gophercap_using_subcommand flows" -l stats -d 'Print throughput every --stats-interval-ms (packet time offline, wall time live)'
complete -c gophercap -n "__fish_gophercap_using_subcommand flows" -l no-stats -d 'No periodic stats (overrides a config file)'
complete -c gophercap -n "__fish_gophercap_using_subcommand flows" -l packets -d 'Per-packet lines even when stdout is not a terminal (they are printed by default on a terminal; the global `-q/--quiet` stops them, as NetScope\'s `--quiet` does)'
complete -c gophercap -n "__fish_gophercap_using_subcommand flows" -s v -l verbose -d 'More log output (-v info, -vv debug, -vvv trace)'
complete -c gophercap -n "__fish_gophercap_using_subcommand flows" -s q -l quiet -d 'Only errors on stderr; no progress bar or summary line'
complete -c gophercap -n "__fish_gophercap_using_subcommand flows" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c gophercap -n "__fish_gophercap_using_subcommand flows" -s V -l version -d 'Print version'
complete -c gophercap -n "__fish_gophercap_using_subcommand http-trace" -s i -l interface -d 'Capture live from this interface instead (SIGINT/SIGTERM end it)' -r
complete -c gophercap -n "__fish_gophercap_using_subcommand http-trace" -s f -l filter -d 'Only packets that match this BPF expression (live with --port and no filter: `tcp port P or ...`)' -r
complete -c gophercap -n "__fish_gophercap_using_subcommand http-trace" -s c -l count -d 'Stop after this many packets' -r
complete -c gophercap -n "__fish_gophercap_using_subcommand http-trace" -l port -d 'HTTP server ports (repeat, or comma-separated): the side with the port is the receiver. Without, HTTP is recognised from the first bytes of each connection' -r
complete -c gophercap -n "__fish_gophercap_using_subcommand http-trace" -l output-file -d 'Append messages to this file' -r -F
complete -c gophercap -n "__fish_gophercap_using_subcommand http-trace" -l output-url -d 'POST each message (one JSON object) to this URL; `Authorization: Bearer` from OUTPUT_URL_AUTH_TOKEN' -r
complete -c gophercap -n "__fish_gophercap_using_subcommand http-trace" -l format -d 'Output format' -r -f -a "json\t'One JSON object per line (the schema in the README)'
pretty\t'node_pcap\'s http_trace layout for people: start lines, headers, latency; coloured on a terminal'"
complete -c gophercap -n "__fish_gophercap_using_subcommand http-trace" -l method -d 'Only requests whose method matches this regular expression (and their responses)' -r
complete -c gophercap -n "__fish_gophercap_using_subcommand http-trace" -l host -d 'Only requests whose Host header matches (and their responses)' -r
complete -c gophercap -n "__fish_gophercap_using_subcommand http-trace" -l url -d 'Only requests whose target (path and query) matches (and their responses)' -r
complete -c gophercap -n "__fish_gophercap_using_subcommand http-trace" -l user-agent -d 'Only requests whose User-Agent matches (and their responses)' -r
complete -c gophercap -n "__fish_gophercap_using_subcommand http-trace" -l redact-header -d 'Replace this header\'s values with [REDACTED] (repeat; given, it replaces the default list: Authorization, Proxy-Authorization, Cookie, Set-Cookie)' -r
complete -c gophercap -n "__fish_gophercap_using_subcommand http-trace" -l max-header-bytes -d 'Longest message head read; a longer one is reported and skipped' -r
complete -c gophercap -n "__fish_gophercap_using_subcommand http-trace" -l max-body-size -d 'Body bytes kept per message; the rest is counted and `body_truncated` set' -r
complete -c gophercap -n "__fish_gophercap_using_subcommand http-trace" -l community-id-seed -d 'The seed of the Community IDs written (sites that compare logs agree on one)' -r
complete -c gophercap -n "__fish_gophercap_using_subcommand http-trace" -l sample-rate -d 'Share of connections traced (0 to 1), chosen by a hash of the connection\'s endpoints' -r
complete -c gophercap -n "__fish_gophercap_using_subcommand http-trace" -l max-concurrent-connections -d 'Connections followed at once; the least recently active is dropped (and logged)' -r
complete -c gophercap -n "__fish_gophercap_using_subcommand http-trace" -l connection-idle-timeout-ms -d 'A connection idle this long (packet time offline) is closed' -r
complete -c gophercap -n "__fish_gophercap_using_subcommand http-trace" -l max-reassembly-mb -d 'Bytes all connections together may hold waiting for missing segments' -r
complete -c gophercap -n "__fish_gophercap_using_subcommand http-trace" -l no-traffic-warning-s -d 'Live: warn once when no packet came for this many seconds (0: never)' -r
complete -c gophercap -n "__fish_gophercap_using_subcommand http-trace" -l capture-stats-interval-s -d 'Live: log libpcap\'s received/dropped counters this often' -r
complete -c gophercap -n "__fish_gophercap_using_subcommand http-trace" -l grace-period-s -d 'On SIGINT/SIGTERM or at the end, time left for the outputs to drain' -r
complete -c gophercap -n "__fish_gophercap_using_subcommand http-trace" -l snaplen -d 'Live capture: bytes kept per packet' -r
complete -c gophercap -n "__fish_gophercap_using_subcommand http-trace" -l timeout-ms -d 'Live capture: read timeout in milliseconds' -r
complete -c gophercap -n "__fish_gophercap_using_subcommand http-trace" -l buffer-size-mb -d 'Live capture: kernel buffer in MiB (0 keeps libpcap\'s default)' -r
complete -c gophercap -n "__fish_gophercap_using_subcommand http-trace" -l user -d 'Live capture: once the interface is open, run as this user (NAME, UID or UID:GID; started as root), as tcpdump -Z does. Output files opened after it belong to that user' -r
complete -c gophercap -n "__fish_gophercap_using_subcommand http-trace" -l metrics-addr -d 'Serve Prometheus metrics on /metrics, with /healthz and /readyz (ready once the capture is open), at this address: HOST:PORT, [IPv6]:PORT or :PORT. Off unless given' -r
complete -c gophercap -n "__fish_gophercap_using_subcommand http-trace" -l log-format -d 'Log line format on stderr' -r -f -a "text\t''
json\t''"
complete -c gophercap -n "__fish_gophercap_using_subcommand http-trace" -l config -d 'TOML file of option defaults: top-level keys for global options, a table per subcommand (`[map]`) for its options; the command line overrides it' -r -F
complete -c gophercap -n "__fish_gophercap_using_subcommand http-trace" -l stdout -d 'Write messages to stdout (the default when no other output is given)'
complete -c gophercap -n "__fish_gophercap_using_subcommand http-trace" -l allow-http -d 'Allow a plain http:// --output-url (https is required otherwise)'
complete -c gophercap -n "__fish_gophercap_using_subcommand http-trace" -l no-redact -d 'Redact nothing'
complete -c gophercap -n "__fish_gophercap_using_subcommand http-trace" -l decompress -d 'Decode gzip and deflate bodies (Content-Encoding)'
complete -c gophercap -n "__fish_gophercap_using_subcommand http-trace" -l promiscuous -d 'Live capture: promiscuous mode (the default)'
complete -c gophercap -n "__fish_gophercap_using_subcommand http-trace" -l no-promiscuous -d 'Live capture: not promiscuous'
complete -c gophercap -n "__fish_gophercap_using_subcommand http-trace" -l immediate-mode -d 'Live capture: hand over each packet at once'
complete -c gophercap -n "__fish_gophercap_using_subcommand http-trace" -l no-immediate-mode -d 'Live capture: let libpcap batch packets (the default)'
complete -c gophercap -n "__fish_gophercap_using_subcommand http-trace" -s v -l verbose -d 'More log output (-v info, -vv debug, -vvv trace)'
complete -c gophercap -n "__fish_gophercap_using_subcommand http-trace" -s q -l quiet -d 'Only errors on stderr; no progress bar or summary line'
complete -c gophercap -n "__fish_gophercap_using_subcommand http-trace" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c gophercap -n "__fish_gophercap_using_subcommand http-trace" -s V -l version -d 'Print version'
complete -c gophercap -n "__fish_gophercap_using_subcommand replay" -l dump-json -d 'The catalog `gophercap map --dump-json` wrote: replay its captures' -r -F
complete -c gophercap -n "__fish_gophercap_using_subcommand replay" -l file-suffix -d 'Only files (and tar members) whose name ends with this' -r
complete -c gophercap -n "__fish_gophercap_using_subcommand replay" -l file-regexp -d 'Only files (and tar members) whose full path matches this regular expression' -r
complete -c gophercap -n "__fish_gophercap_using_subcommand replay" -l out-interface -d 'Send on this interface' -r
complete -c gophercap -n "__fish_gophercap_using_subcommand replay" -l out-pcap -d 'Write the schedule into this pcap (replay-time timestamps) instead of sending' -r -F
complete -c gophercap -n "__fish_gophercap_using_subcommand replay" -l time-modifier -d 'Speed factor: 2 replays twice as fast, 0.5 half as fast' -r
complete -c gophercap -n "__fish_gophercap_using_subcommand replay" -l time-scale-duration -d 'The duration the set is scaled to, e.g. 90s, 15m, 2h (plain numbers are seconds)' -r
complete -c gophercap -n "__fish_gophercap_using_subcommand replay" -l loop-count -d 'Play the set this many times' -r
complete -c gophercap -n "__fish_gophercap_using_subcommand replay" -l out-bpf -d 'Only send packets that match this BPF expression' -r
complete -c gophercap -n "__fish_gophercap_using_subcommand replay" -l time-from -d 'Skip packets before this time (RFC 3339, or `YYYY-MM-DD HH:MM:SS` in UTC)' -r
complete -c gophercap -n "__fish_gophercap_using_subcommand replay" -l time-to -d 'Stop at packets after this time (RFC 3339, or `YYYY-MM-DD HH:MM:SS` in UTC)' -r
complete -c gophercap -n "__fish_gophercap_using_subcommand replay" -l skip-mtu -d 'Skip packets whose IP packet is larger than this (default: the interface\'s MTU)' -r
complete -c gophercap -n "__fish_gophercap_using_subcommand replay" -l pps -d 'Send at this many packets per second' -r
complete -c gophercap -n "__fish_gophercap_using_subcommand replay" -l mbps -d 'Send at this many megabits per second' -r
complete -c gophercap -n "__fish_gophercap_using_subcommand replay" -l stats-interval -d 'Log progress every this many seconds (0 disables)' -r
complete -c gophercap -n "__fish_gophercap_using_subcommand replay" -l log-format -d 'Log line format on stderr' -r -f -a "text\t''
json\t''"
complete -c gophercap -n "__fish_gophercap_using_subcommand replay" -l config -d 'TOML file of option defaults: top-level keys for global options, a table per subcommand (`[map]`) for its options; the command line overrides it' -r -F
complete -c gophercap -n "__fish_gophercap_using_subcommand replay" -l time-scale-enabled -d 'Fit the whole set into --time-scale-duration'
complete -c gophercap -n "__fish_gophercap_using_subcommand replay" -l loop-infinite -d 'Play the set until interrupted'
complete -c gophercap -n "__fish_gophercap_using_subcommand replay" -l wait-disable -d 'Start every file at once instead of at its delay from the set\'s start'
complete -c gophercap -n "__fish_gophercap_using_subcommand replay" -l topspeed -d 'Send as fast as possible'
complete -c gophercap -n "__fish_gophercap_using_subcommand replay" -s v -l verbose -d 'More log output (-v info, -vv debug, -vvv trace)'
complete -c gophercap -n "__fish_gophercap_using_subcommand replay" -s q -l quiet -d 'Only errors on stderr; no progress bar or summary line'
complete -c gophercap -n "__fish_gophercap_using_subcommand replay" -s h -l help -d 'Print help'
complete -c gophercap -n "__fish_gophercap_using_subcommand replay" -s V -l version -d 'Print version'
complete -c gophercap -n "__fish_gophercap_using_subcommand tap" -s r -l read -d 'Read captures, folders or tarballs instead of capturing live (`-` for stdin)' -r -F
complete -c gophercap -n "__fish_gophercap_using_subcommand tap" -s i -l interface -d 'Live: the interface, instead of the configuration\'s io.input.capture.iface' -r
complete -c gophercap -n "__fish_gophercap_using_subcommand tap" -l log-level -d 'Console log level (trace, debug, info, warn, error), instead of the configuration\'s logging.console.verbosity' -r
complete -c gophercap -n "__fish_gophercap_using_subcommand tap" -l user -d 'Live: once the interface is open, run as this user (NAME, UID or UID:GID; started as root), as tcpdump -Z does' -r
complete -c gophercap -n "__fish_gophercap_using_subcommand tap" -l metrics-addr -d 'Serve Prometheus metrics on /metrics, with /healthz and /readyz (ready once the capture is open), at this address: HOST:PORT, [IPv6]:PORT or :PORT. Off unless given' -r
complete -c gophercap -n "__fish_gophercap_using_subcommand tap" -l log-format -d 'Log line format on stderr' -r -f -a "text\t''
json\t''"
complete -c gophercap -n "__fish_gophercap_using_subcommand tap" -l config -d 'TOML file of option defaults: top-level keys for global options, a table per subcommand (`[map]`) for its options; the command line overrides it' -r -F
complete -c gophercap -n "__fish_gophercap_using_subcommand tap" -l example-config -d 'Print a commented example configuration (JSON5, Stethoscope\'s keys) and exit'
complete -c gophercap -n "__fish_gophercap_using_subcommand tap" -l check-config -d 'Validate the configuration (as for live capture, unless --read is given) and exit'
complete -c gophercap -n "__fish_gophercap_using_subcommand tap" -l pace -d 'With --read: deliver packets at the pace they were captured, as if live (the capture then never waits for a consumer). Without it, as fast as the consumers accept'
complete -c gophercap -n "__fish_gophercap_using_subcommand tap" -s v -l verbose -d 'More log output (-v info, -vv debug, -vvv trace)'
complete -c gophercap -n "__fish_gophercap_using_subcommand tap" -s q -l quiet -d 'Only errors on stderr; no progress bar or summary line'
complete -c gophercap -n "__fish_gophercap_using_subcommand tap" -s h -l help -d 'Print help'
complete -c gophercap -n "__fish_gophercap_using_subcommand tap" -s V -l version -d 'Print version'
complete -c gophercap -n "__fish_gophercap_using_subcommand tar-extract" -l in-tarball -d 'The archive (.tar, .tar.gz, .tgz; `-` reads stdin)' -r -F
complete -c gophercap -n "__fish_gophercap_using_subcommand tar-extract" -l out-dir -d 'Where members are written, under their relative paths' -r -F
complete -c gophercap -n "__fish_gophercap_using_subcommand tar-extract" -l file-regexp -d 'Only members whose full path in the archive matches this regular expression' -r
complete -c gophercap -n "__fish_gophercap_using_subcommand tar-extract" -l gzip-level -d 'gzip level for --out-gzip (1 fastest, 9 smallest)' -r
complete -c gophercap -n "__fish_gophercap_using_subcommand tar-extract" -l log-format -d 'Log line format on stderr' -r -f -a "text\t''
json\t''"
complete -c gophercap -n "__fish_gophercap_using_subcommand tar-extract" -l config -d 'TOML file of option defaults: top-level keys for global options, a table per subcommand (`[map]`) for its options; the command line overrides it' -r -F
complete -c gophercap -n "__fish_gophercap_using_subcommand tar-extract" -l dryrun -d 'List what would be extracted (path and size) and write nothing'
complete -c gophercap -n "__fish_gophercap_using_subcommand tar-extract" -l out-gzip -d 'Write each member gzipped as NAME.gz (members that already are gzip are written as is)'
complete -c gophercap -n "__fish_gophercap_using_subcommand tar-extract" -l flatten -d 'Write every member directly in --out-dir under its file name; a name clash is an error'
complete -c gophercap -n "__fish_gophercap_using_subcommand tar-extract" -l overwrite -d 'Replace files that already exist (by default they are kept and the member skipped)'
complete -c gophercap -n "__fish_gophercap_using_subcommand tar-extract" -s v -l verbose -d 'More log output (-v info, -vv debug, -vvv trace)'
complete -c gophercap -n "__fish_gophercap_using_subcommand tar-extract" -s q -l quiet -d 'Only errors on stderr; no progress bar or summary line'
complete -c gophercap -n "__fish_gophercap_using_subcommand tar-extract" -s h -l help -d 'Print help'
complete -c gophercap -n "__fish_gophercap_using_subcommand tar-extract" -s V -l version -d 'Print version'
complete -c gophercap -n "__fish_gophercap_using_subcommand list-interfaces" -l log-format -d 'Log line format on stderr' -r -f -a "text\t''
json\t''"
complete -c gophercap -n "__fish_gophercap_using_subcommand list-interfaces" -l config -d 'TOML file of option defaults: top-level keys for global options, a table per subcommand (`[map]`) for its options; the command line overrides it' -r -F
complete -c gophercap -n "__fish_gophercap_using_subcommand list-interfaces" -l json -d 'Print JSON lines instead of a table'
complete -c gophercap -n "__fish_gophercap_using_subcommand list-interfaces" -s v -l verbose -d 'More log output (-v info, -vv debug, -vvv trace)'
complete -c gophercap -n "__fish_gophercap_using_subcommand list-interfaces" -s q -l quiet -d 'Only errors on stderr; no progress bar or summary line'
complete -c gophercap -n "__fish_gophercap_using_subcommand list-interfaces" -s h -l help -d 'Print help'
complete -c gophercap -n "__fish_gophercap_using_subcommand list-interfaces" -s V -l version -d 'Print version'
complete -c gophercap -n "__fish_gophercap_using_subcommand webhook; and not __fish_seen_subcommand_from certs help" -l tls-cert -d 'The serving certificate (PEM, with its chain); reloaded when the file changes' -r -F
complete -c gophercap -n "__fish_gophercap_using_subcommand webhook; and not __fish_seen_subcommand_from certs help" -l tls-key -d 'Its private key (PEM); reloaded with the certificate' -r -F
complete -c gophercap -n "__fish_gophercap_using_subcommand webhook; and not __fish_seen_subcommand_from certs help" -l listen -d 'Where to serve POST /mutate, /healthz and /readyz' -r
complete -c gophercap -n "__fish_gophercap_using_subcommand webhook; and not __fish_seen_subcommand_from certs help" -l image -d 'The gophercap image the sidecar runs' -r
complete -c gophercap -n "__fish_gophercap_using_subcommand webhook; and not __fish_seen_subcommand_from certs help" -l image-pull-policy -d 'The sidecar\'s imagePullPolicy (the cluster\'s default when not given)' -r
complete -c gophercap -n "__fish_gophercap_using_subcommand webhook; and not __fish_seen_subcommand_from certs help" -l interface -d 'The interface the sidecar captures on (a pod\'s own: eth0)' -r
complete -c gophercap -n "__fish_gophercap_using_subcommand webhook; and not __fish_seen_subcommand_from certs help" -l output-url -d 'Default POST endpoint of the sidecars\' messages (stdout when not given)' -r
complete -c gophercap -n "__fish_gophercap_using_subcommand webhook; and not __fish_seen_subcommand_from certs help" -l output-token-secret -d 'Default secret holding the POST bearer token, NAME/KEY (referenced, never copied)' -r
complete -c gophercap -n "__fish_gophercap_using_subcommand webhook; and not __fish_seen_subcommand_from certs help" -l sidecar-metrics-port -d 'The sidecar\'s metrics port (the next free one when a container of the pod has it)' -r
complete -c gophercap -n "__fish_gophercap_using_subcommand webhook; and not __fish_seen_subcommand_from certs help" -l cpu-request -d 'The sidecar\'s CPU request' -r
complete -c gophercap -n "__fish_gophercap_using_subcommand webhook; and not __fish_seen_subcommand_from certs help" -l cpu-limit -d 'The sidecar\'s CPU limit (none unless given)' -r
complete -c gophercap -n "__fish_gophercap_using_subcommand webhook; and not __fish_seen_subcommand_from certs help" -l memory-request -d 'The sidecar\'s memory request' -r
complete -c gophercap -n "__fish_gophercap_using_subcommand webhook; and not __fish_seen_subcommand_from certs help" -l memory-limit -d 'The sidecar\'s memory limit (by default what its limits below need at most, by the README\'s sizing formula, and a quarter more)' -r
complete -c gophercap -n "__fish_gophercap_using_subcommand webhook; and not __fish_seen_subcommand_from certs help" -l sidecar-max-connections -d 'The sidecar\'s --max-concurrent-connections' -r
complete -c gophercap -n "__fish_gophercap_using_subcommand webhook; and not __fish_seen_subcommand_from certs help" -l sidecar-max-body-size -d 'The sidecar\'s --max-body-size' -r
complete -c gophercap -n "__fish_gophercap_using_subcommand webhook; and not __fish_seen_subcommand_from certs help" -l sidecar-max-reassembly-mb -d 'The sidecar\'s --max-reassembly-mb' -r
complete -c gophercap -n "__fish_gophercap_using_subcommand webhook; and not __fish_seen_subcommand_from certs help" -l metrics-addr -d 'Serve Prometheus metrics on /metrics, with /healthz and /readyz (ready once the capture is open), at this address: HOST:PORT, [IPv6]:PORT or :PORT. Off unless given' -r
complete -c gophercap -n "__fish_gophercap_using_subcommand webhook; and not __fish_seen_subcommand_from certs help" -l log-format -d 'Log line format on stderr' -r -f -a "text\t''
json\t''"
complete -c gophercap -n "__fish_gophercap_using_subcommand webhook; and not __fish_seen_subcommand_from certs help" -l config -d 'TOML file of option defaults: top-level keys for global options, a table per subcommand (`[map]`) for its options; the command line overrides it' -r -F
complete -c gophercap -n "__fish_gophercap_using_subcommand webhook; and not __fish_seen_subcommand_from certs help" -s v -l verbose -d 'More log output (-v info, -vv debug, -vvv trace)'
complete -c gophercap -n "__fish_gophercap_using_subcommand webhook; and not __fish_seen_subcommand_from certs help" -s q -l quiet -d 'Only errors on stderr; no progress bar or summary line'
complete -c gophercap -n "__fish_gophercap_using_subcommand webhook; and not __fish_seen_subcommand_from certs help" -s h -l help -d 'Print help'
complete -c gophercap -n "__fish_gophercap_using_subcommand webhook; and not __fish_seen_subcommand_from certs help" -s V -l version -d 'Print version'
complete -c gophercap -n "__fish_gophercap_using_subcommand webhook; and not __fish_seen_subcommand_from certs help" -f -a "certs" -d 'Write a CA and a serving certificate for NAME.NS.svc into DIR (ca.crt, tls.crt, tls.key) and print the caBundle, for clusters without cert-manager'
complete -c gophercap -n "__fish_gophercap_using_subcommand webhook; and not __fish_seen_subcommand_from certs help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c gophercap -n "__fish_gophercap_using_subcommand webhook; and __fish_seen_subcommand_from certs" -l service -d 'The webhook\'s Service name' -r
complete -c gophercap -n "__fish_gophercap_using_subcommand webhook; and __fish_seen_subcommand_from certs" -l namespace -d 'The Service\'s namespace' -r
complete -c gophercap -n "__fish_gophercap_using_subcommand webhook; and __fish_seen_subcommand_from certs" -l out -d 'Where to write the files (made if missing)' -r -F
complete -c gophercap -n "__fish_gophercap_using_subcommand webhook; and __fish_seen_subcommand_from certs" -l log-format -d 'Log line format on stderr' -r -f -a "text\t''
json\t''"
complete -c gophercap -n "__fish_gophercap_using_subcommand webhook; and __fish_seen_subcommand_from certs" -l config -d 'TOML file of option defaults: top-level keys for global options, a table per subcommand (`[map]`) for its options; the command line overrides it' -r -F
complete -c gophercap -n "__fish_gophercap_using_subcommand webhook; and __fish_seen_subcommand_from certs" -s v -l verbose -d 'More log output (-v info, -vv debug, -vvv trace)'
complete -c gophercap -n "__fish_gophercap_using_subcommand webhook; and __fish_seen_subcommand_from certs" -s q -l quiet -d 'Only errors on stderr; no progress bar or summary line'
complete -c gophercap -n "__fish_gophercap_using_subcommand webhook; and __fish_seen_subcommand_from certs" -s h -l help -d 'Print help'
complete -c gophercap -n "__fish_gophercap_using_subcommand webhook; and __fish_seen_subcommand_from certs" -s V -l version -d 'Print version'
complete -c gophercap -n "__fish_gophercap_using_subcommand webhook; and __fish_seen_subcommand_from help" -f -a "certs" -d 'Write a CA and a serving certificate for NAME.NS.svc into DIR (ca.crt, tls.crt, tls.key) and print the caBundle, for clusters without cert-manager'
complete -c gophercap -n "__fish_gophercap_using_subcommand webhook; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c gophercap -n "__fish_gophercap_using_subcommand help; and not __fish_seen_subcommand_from map flows http-trace replay tap tar-extract list-interfaces webhook help" -f -a "map" -d 'Metadata of every capture in files, folders and tarballs, in parallel, as JSON'
complete -c gophercap -n "__fish_gophercap_using_subcommand help; and not __fish_seen_subcommand_from map flows http-trace replay tap tar-extract list-interfaces webhook help" -f -a "flows" -d 'The flow table: per-packet lines, TCP state and analysis, exported as JSON or CSV'
complete -c gophercap -n "__fish_gophercap_using_subcommand help; and not __fish_seen_subcommand_from map flows http-trace replay tap tar-extract list-interfaces webhook help" -f -a "http-trace" -d 'HTTP/1.x and WebSocket messages from reassembled TCP, as JSON lines, files or POSTs'
complete -c gophercap -n "__fish_gophercap_using_subcommand help; and not __fish_seen_subcommand_from map flows http-trace replay tap tar-extract list-interfaces webhook help" -f -a "replay" -d 'Replay many captures on one global timeline, onto an interface or into a file'
complete -c gophercap -n "__fish_gophercap_using_subcommand help; and not __fish_seen_subcommand_from map flows http-trace replay tap tar-extract list-interfaces webhook help" -f -a "tap" -d 'Reassembled TCP sessions forwarded to sockets and captures, with a control plane'
complete -c gophercap -n "__fish_gophercap_using_subcommand help; and not __fish_seen_subcommand_from map flows http-trace replay tap tar-extract list-interfaces webhook help" -f -a "tar-extract" -d 'Stream chosen captures out of a (gzipped) tarball in one pass, in constant memory'
complete -c gophercap -n "__fish_gophercap_using_subcommand help; and not __fish_seen_subcommand_from map flows http-trace replay tap tar-extract list-interfaces webhook help" -f -a "list-interfaces" -d 'Interfaces that live capture can open'
complete -c gophercap -n "__fish_gophercap_using_subcommand help; and not __fish_seen_subcommand_from map flows http-trace replay tap tar-extract list-interfaces webhook help" -f -a "webhook" -d 'The Kubernetes admission webhook that injects the http-trace sidecar (and its certs)'
complete -c gophercap -n "__fish_gophercap_using_subcommand help; and not __fish_seen_subcommand_from map flows http-trace replay tap tar-extract list-interfaces webhook help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c gophercap -n "__fish_gophercap_using_subcommand help; and __fish_seen_subcommand_from webhook" -f -a "certs" -d 'Write a CA and a serving certificate for NAME.NS.svc into DIR (ca.crt, tls.crt, tls.key) and print the caBundle, for clusters without cert-manager'
