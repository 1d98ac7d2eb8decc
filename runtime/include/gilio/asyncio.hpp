// gilio/asyncio.hpp — everything of gilio::asyncio in one include.
//
//     #include <gilio/asyncio.hpp>
//     namespace asyncio = gilio::asyncio;
//
// The pieces, each a header named after the asyncio module it mirrors:
//   asyncio/events.hpp      EventLoop, get_running_loop, Handle       (events.py, base_events.py)
//   asyncio/coro.hpp        Coro<T>, Outcome<T>                       (coroutines)
//   asyncio/futures.hpp     Future<T>                                 (futures.py)
//   asyncio/tasks.hpp       Task<T>, create_task, sleep, current_task (tasks.py)
//   asyncio/generators.hpp  AsyncGenerator<T>, <T, S> (asend)         (async generators)
//   asyncio/waiting.hpp     gather, wait, as_completed, shield        (tasks.py)
//   asyncio/timeouts.hpp    timeout, timeout_at, wait_for             (timeouts.py)
//   asyncio/taskgroups.hpp  TaskGroup                                 (taskgroups.py)
//   asyncio/locks.hpp       Lock, Event, Condition, Semaphore, Barrier (locks.py)
//   asyncio/queues.hpp      Queue, PriorityQueue, LifoQueue           (queues.py)
//   asyncio/runners.hpp     run                                       (runners.py)
//   asyncio/sockets.hpp     the loop's sock_recv and sock_sendall awaitables (selector_events.py)
//   asyncio/datagrams.hpp   create_datagram_endpoint, DatagramProtocol  (selector_events.py)
//   asyncio/threads.hpp     to_thread, run_in_executor                (threads.py)
//   asyncio/exceptions.hpp  CancelledError, TimeoutError, ...         (exceptions.py)
// and, beside them, gilio/contextvars.hpp: ContextVar, Context, copy_context (the contextvars
// module), which tasks, callbacks and to_thread copy as asyncio's do.
#pragma once

#include "gilio/asyncio/coro.hpp"
#include "gilio/asyncio/datagrams.hpp"
#include "gilio/asyncio/events.hpp"
#include "gilio/asyncio/exceptions.hpp"
#include "gilio/asyncio/files.hpp"
#include "gilio/asyncio/futures.hpp"
#include "gilio/asyncio/generators.hpp"
#include "gilio/asyncio/locks.hpp"
#include "gilio/asyncio/protocols.hpp"
#include "gilio/asyncio/queues.hpp"
#include "gilio/asyncio/runners.hpp"
#include "gilio/asyncio/sockets.hpp"
#include "gilio/asyncio/streams.hpp"
#include "gilio/asyncio/subprocess.hpp"
#include "gilio/asyncio/taskgroups.hpp"
#include "gilio/asyncio/tasks.hpp"
#include "gilio/asyncio/threads.hpp"
#include "gilio/asyncio/timeouts.hpp"
#include "gilio/asyncio/waiting.hpp"
#include "gilio/contextvars.hpp"
