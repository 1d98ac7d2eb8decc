#!/usr/bin/env bash
# examples/tour.sh — `make demo`: runs the lesson examples in the course's order, each
# introduced by what to watch for. Argument: the folder holding the built examples.
#
# Each example's output is kept (in a temporary folder) so that the tour can end with one table
# of the figures it measured, beside what CPython 3.11 shows on the same kind of machine
# (../shared/MISSION.md, and bench/python/ for the figures measured here).
set -euo pipefail
bin=${1:-build/examples}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
start=$SECONDS

step() {  # step NAME "what to watch for" ARGS...
  local name=$1 watch=$2
  shift 2
  printf '\n\033[1m== %s\033[0m\n%s\n\n' "$name" "$watch"
  "$bin/$name" "$@" | tee "$out/$name.txt"
}

# field FILE PATTERN N: the Nth whitespace-separated field (from the end when N < 0) of the
# last line of FILE's output that matches PATTERN; "?" if none does.
field() {
  awk -v n="$3" "/$2/ { v = (n < 0) ? \$(NF + 1 + n) : \$n }
    END { if (v == \"\") v = \"?\"; print v }" "$out/$1.txt"
}

step race "L8/L9: 'num += 1' is four bytecodes. Watch the old policy (a check between every
bytecode) lose increments at tiny switch intervals, while CPython 3.10+'s policy never does."
step cpu_threads "L1/L4: two CPU-bound threads on two cores are no faster under the GIL — each
waits half its life for it. With the GIL off (like CPython 3.13t) they run in parallel."
step io_threads "L3: blocking calls release the GIL, so eight threads waiting 100 ms each finish
together in about 100 ms."
step convoy "The convoy effect: one CPU-bound thread makes an I/O thread ~100x slower in CPython's
mode; io_priority mode (a thread back from I/O asks for the GIL at once) removes it."
step hello "L5 begins: coroutines. Awaited one after another they take 0.1 + 0.2 s."
step gather "L5: gather runs the three on one thread, concurrently: 0.3 s, not 0.6 s, and the
lines interleave."
step to_thread "L5: asyncio does not get around the GIL. A CPU-bound function in to_thread makes
every wake-up of the loop about one switch interval (5 ms) late."
step concurrent_requests "L5 on real sockets: ten requests to a slow server one after another take
a second; ten threads or ten tasks take a tenth of it — the tasks on one thread."
step subprocesses "L5 for child processes: three shell commands of 0.5 s each, started and awaited
from one thread, take 0.5 s together; the loop waits for them on pidfds and pipes in io_uring."
step cpu_offload "L4/L6/L7, the headline: CPU jobs from an event loop. Run in the task they stall
the loop; in to_thread they share one GIL (~1x); only processes (or no GIL) give ~2x on 2 cores."

missing=0
row() {  # row LESSON FIGURE GILIO CPYTHON
  [[ $3 == "?" || -z $3 ]] && missing=1
  printf '%-7s %-50s %9s   %s\n' "$@"
}
printf '\n\033[1m== Summary\033[0m (%d s)\n\n' $((SECONDS - start))
row lesson "figure" gilio "CPython 3.11 here"
row ------ "------" ----- "-----------------"
race_old=$(grep '5e-07 s' "$out/race.txt" | tail -1 | awk -F'|' '{gsub(/ /, "", $2); print $2}')
race_new=$(grep '5e-07 s' "$out/race.txt" | tail -1 | awk -F'|' '{gsub(/ /, "", $3); print $3}')
row L8/L9 "race at 5e-07 s, <=3.9 policy: % attempts correct" "$race_old" "71% (source docs)"
row L8/L9 "race at 5e-07 s, >=3.10 policy: % attempts correct" "$race_new" "100%"
row L1/L4 "2 CPU threads under the GIL: speedup" "$(field cpu_threads 'threads, GIL cpython' -1)" \
  "0.93x"
row L4 "2 CPU threads, GIL off: speedup" "$(field cpu_threads 'threads, GIL off' -1)" \
  "-"
row L3 "8 blocking recv() in 8 threads: overlap" "$(field io_threads 'blocking recv' -1)" "~8x"
row convoy "I/O thread beside a CPU thread: slowdown" "$(field convoy '^cpython +[0-9]' 4)" "~100x"
row convoy "the same, io_priority mode: slowdown" "$(field convoy '^io_priority +[0-9]' 4)" "-"
row L5 "gather of 0.1+0.2+0.3 s sleeps: seconds" "$(field gather 'in [0-9.]+ s' -2)" "0.3"
row L5 "sleep(1 ms) beside CPU to_thread: p50 late, ms" \
  "$(field to_thread 'beside a CPU-bound' 5)" "5.5"
row L5 "10 slow requests, one task each: seconds" "$(field concurrent_requests 'one task per' 5)" \
  "0.1"
row L5 "3 shell commands of 0.5 s at once: seconds" "$(field subprocesses 'each took' -2)" "0.52"
row L4 "8 CPU jobs in to_thread: speedup" "$(field cpu_offload 'to_thread, GIL cpython' 5)" "0.93x"
row L11 "8 CPU jobs, native code in to_thread: speedup" \
  "$(field cpu_offload 'to_thread, native' 5)" "-"
row L6 "8 CPU jobs in 2 worker processes: speedup" "$(field cpu_offload 'process pool, 2' 6)" \
  "1.5x"
row L7 "process pool: one tiny call's round trip, us" "$(field cpu_offload '^process pool  ' 5)" \
  "200-250"
printf '\nThe course: docs/README.md. The comparisons with CPython and the peers: make bench.\n'
if ((missing)); then
  echo "tour.sh: a figure marked ? was not found in its example's output" >&2
  exit 1
fi
