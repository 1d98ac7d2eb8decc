#!/usr/bin/env bash
# examples/tour.sh — `make demo`: runs the lesson examples in the course's order, each
# introduced by what to watch for. Argument: the folder holding the built examples.
set -euo pipefail
bin=${1:-build/examples}

step() {  # step NAME "what to watch for" ARGS...
  local name=$1 watch=$2
  shift 2
  printf '\n\033[1m== %s\033[0m\n%s\n\n' "$name" "$watch"
  "$bin/$name" "$@"
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
step cpu_offload "L4/L6/L7, the headline: CPU jobs from an event loop. Run in the task they stall
the loop; in to_thread they share one GIL (~1x); only processes (or no GIL) give ~2x on 2 cores."
printf '\nThe course: docs/README.md. The comparisons with CPython and the peers: make bench.\n'
