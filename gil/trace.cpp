// gil/trace.cpp — writes the GILIO_TRACE timeline (Chrome trace-event JSON).
//
// No CPython twin: CPython has no built-in GIL timeline; this plays the part of the classic
// visualisations of the GIL (Beazley's "Understanding the Python GIL"). Events are kept in
// memory and written once, at exit or on flush(), as {"traceEvents": [...]} with "X" (span),
// "i" (instant) and "M" (thread name) events; timestamps are microseconds since the first event.
#include "gilio/trace.hpp"

#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace gilio::trace {
namespace {

constexpr std::size_t kMaxEvents = 1'000'000;

struct Event {
  std::string name;
  std::string category;
  char phase;
  int tid;
  std::uint64_t start_ns;
  std::uint64_t dur_ns;
};

struct Timeline {
  std::mutex mutex;
  std::string path;
  pid_t owner = 0;
  std::vector<Event> events;
  std::map<int, std::string> names;
  std::size_t lost = 0;
};

void write_at_exit();

Timeline* timeline() {
  static Timeline* t = [] {
    const char* path = std::getenv("GILIO_TRACE");
    if (path == nullptr || *path == '\0') return static_cast<Timeline*>(nullptr);
    auto* tl = new Timeline;
    tl->path = path;
    tl->owner = ::getpid();
    std::atexit(write_at_exit);
    return tl;
  }();
  return t;
}

thread_local const int this_tid = static_cast<int>(::syscall(SYS_gettid));

void record(Event e) {
  Timeline* t = timeline();
  std::lock_guard lk(t->mutex);
  if (t->events.size() >= kMaxEvents) {
    ++t->lost;
    return;
  }
  t->events.push_back(std::move(e));
}

void append_json_string(std::string& out, std::string_view s) {
  out += '"';
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += c;
    }
  }
  out += '"';
}

void write_at_exit() {
  flush();
}

}  // namespace

bool enabled() noexcept {
  Timeline* t = timeline();
  return t != nullptr && t->owner == ::getpid();
}

std::uint64_t now_ns() noexcept {
  timespec ts;
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000u + ts.tv_nsec;
}

void span(std::string_view name, std::string_view category, std::uint64_t start_ns,
          std::uint64_t end_ns) {
  if (!enabled()) return;
  record({std::string(name), std::string(category), 'X', this_tid, start_ns,
          end_ns > start_ns ? end_ns - start_ns : 0});
}

void instant(std::string_view name, std::string_view category) {
  if (!enabled()) return;
  record({std::string(name), std::string(category), 'i', this_tid, now_ns(), 0});
}

void name_thread(int tid, std::string_view name) {
  if (!enabled()) return;
  Timeline* t = timeline();
  std::lock_guard lk(t->mutex);
  t->names[tid] = std::string(name);
}

void flush() {
  if (!enabled()) return;
  Timeline* t = timeline();
  std::lock_guard lk(t->mutex);
  std::uint64_t origin = UINT64_MAX;
  for (const Event& e : t->events)
    origin = std::min(origin, e.start_ns);
  if (origin == UINT64_MAX) origin = 0;
  const int pid = static_cast<int>(t->owner);
  std::string out = "{\"displayTimeUnit\":\"ms\",\"traceEvents\":[\n";
  bool first = true;
  auto begin_event = [&] {
    if (!first) out += ",\n";
    first = false;
  };
  for (const auto& [tid, name] : t->names) {
    begin_event();
    out += "{\"ph\":\"M\",\"name\":\"thread_name\",\"pid\":" + std::to_string(pid) +
           ",\"tid\":" + std::to_string(tid) + ",\"args\":{\"name\":";
    append_json_string(out, name);
    out += "}}";
  }
  char num[64];
  for (const Event& e : t->events) {
    begin_event();
    out += "{\"ph\":\"";
    out += e.phase;
    out += "\",\"name\":";
    append_json_string(out, e.name);
    out += ",\"cat\":";
    append_json_string(out, e.category);
    std::snprintf(num, sizeof num, ",\"ts\":%.3f", (e.start_ns - origin) / 1e3);
    out += num;
    if (e.phase == 'X') {
      std::snprintf(num, sizeof num, ",\"dur\":%.3f", e.dur_ns / 1e3);
      out += num;
    } else {
      out += ",\"s\":\"t\"";
    }
    out += ",\"pid\":" + std::to_string(pid) + ",\"tid\":" + std::to_string(e.tid) + "}";
  }
  out += "\n],\"otherData\":{\"lost_events\":" + std::to_string(t->lost) + "}}\n";
  if (std::FILE* f = std::fopen(t->path.c_str(), "w")) {
    std::fwrite(out.data(), 1, out.size(), f);
    std::fclose(f);
  } else {
    std::fprintf(stderr, "gilio: cannot write GILIO_TRACE file '%s'\n", t->path.c_str());
  }
}

}  // namespace gilio::trace
