// gilio/trace.hpp — a Chrome trace-event timeline of who held the GIL when.
//
// Set GILIO_TRACE=path.json and gilio records, per thread, the spans in which the thread held
// the GIL and those in which it waited for it, the drop requests, and (from the runtime) the
// event loop's waits and task steps. At exit (or on flush()) it writes the JSON format that
// chrome://tracing and Perfetto (ui.perfetto.dev) open: one row per thread, named.
//
// Recording costs one relaxed load when tracing is off. When it is on, events go into one
// buffer under a mutex, capped at a million events (the file then says how many were lost).
// This is a diagnostic, like CPython's -X importtime or perf maps: not part of the asyncio API.
// A forked child stops recording, so it cannot overwrite its parent's file.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace gilio::trace {

// True when GILIO_TRACE names a file (read once) and this process is the one that read it.
bool enabled() noexcept;
// Monotonic nanoseconds, the clock of every event.
std::uint64_t now_ns() noexcept;
// A span on the calling thread's row ("X" event).
void span(std::string_view name, std::string_view category, std::uint64_t start_ns,
          std::uint64_t end_ns);
// A moment on the calling thread's row ("i" event).
void instant(std::string_view name, std::string_view category);
// Names the calling thread's row.
void name_thread(int tid, std::string_view name);
// Writes the file now (it is also written at exit).
void flush();

}  // namespace gilio::trace
