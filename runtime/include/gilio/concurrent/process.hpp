// gilio/concurrent/process.hpp — ProcessPoolExecutor: CPU work in processes, each with a GIL of
// its own; mirrors Lib/concurrent/futures/process.py.
//
// Under a GIL, CPU-bound work gets faster only in separate processes (lessons L4, L6) — and a
// process costs memory and start-up time (L7). A call crosses to a worker as bytes: the
// function (a plain function or a captureless lambda: a code address, valid in the worker
// because the worker is a fork of this process) and its serialized arguments (wire.hpp); the
// result or the exception comes back the same way.
//
// How it works (runtime/process.cpp): workers are forked at the first submit. One manager
// thread owns every worker's channel (a socketpair) and does all the I/O with poll(): it moves
// queued calls to workers with spare capacity — several calls in one write when they have queued
// up — and reads results back, completing the futures. submit() only queues (and wakes the
// manager if it sleeps), or writes the call itself to an idle worker when nothing is queued. So
// a call that has not been sent can still be cancelled, and no thread ever blocks on a full pipe.
//
// Faults, as Python: an exception in fn comes back as RemoteError (original type name and
// what()); a worker that dies (crash, abort, kill) breaks the pool at once — every pending and
// later future fails with BrokenProcessPool, the other workers are killed, and all are reaped.
// A result that fails to deserialize is an error on that future. submit() after shutdown()
// throws std::runtime_error; shutdown(cancel_futures=true) cancels what has not been sent.
//
// Why fork, and when: a worker is a fork of the submitting process, re-initialised as CPython's
// PyOS_AfterFork_Child does: its GIL is rebuilt (gil.cpp's atfork handler), and it closes every
// descriptor but stdin/stdout/stderr and its own channel (no ring, no sockets). Forking a process
// that runs other threads is safe only for what the child then uses — here the GIL (rebuilt),
// malloc and stdio (glibc makes them fork-safe), and the frame pool (locked across fork).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "gilio/concurrent.hpp"
#include "gilio/concurrent/wire.hpp"

namespace gilio::concurrent {

class BrokenExecutor : public std::runtime_error {
  using std::runtime_error::runtime_error;
};
class BrokenProcessPool : public BrokenExecutor {
  using BrokenExecutor::BrokenExecutor;
};

// An exception raised by fn in a worker. type_name() is the original type, demangled.
class RemoteError : public std::runtime_error {
 public:
  RemoteError(std::string type_name, std::string message)
      : std::runtime_error(type_name + ": " + message),
        type_name_(std::move(type_name)),
        message_(std::move(message)) {}
  const std::string& type_name() const noexcept { return type_name_; }
  const std::string& message() const noexcept { return message_; }

 private:
  std::string type_name_;
  std::string message_;
};

namespace detail {

// Runs in the worker: decodes the arguments, calls fn, encodes the result.
using Trampoline = void (*)(std::uintptr_t fn, wire::Reader& in, wire::Writer& out);

template <class R, class... A>
void call_in_worker(std::uintptr_t fn, wire::Reader& in, wire::Writer& out) {
  auto f = reinterpret_cast<R (*)(A...)>(fn);
  auto args = wire::get<std::tuple<std::decay_t<A>...>>(in);
  if constexpr (std::is_void_v<R>) {
    std::apply(f, std::move(args));
  } else {
    wire::put(out, std::apply(f, std::move(args)));
  }
}

// map with a chunksize: one call carries a whole chunk of arguments and brings back the results.
template <class R, class A>
void call_chunk_in_worker(std::uintptr_t fn, wire::Reader& in, wire::Writer& out) {
  auto f = reinterpret_cast<R (*)(A)>(fn);
  auto items = wire::get<std::vector<std::decay_t<A>>>(in);
  std::vector<R> results;
  results.reserve(items.size());
  for (auto& x : items)
    results.push_back(f(x));
  wire::put(out, results);
}

template <class Fp>
struct Signature;
template <class R, class... A>
struct Signature<R (*)(A...)> {
  using result = R;
  static constexpr Trampoline trampoline = &call_in_worker<R, A...>;
  template <class... Given>
  static std::string encode(Given&&... given) {
    static_assert((wire::Serializable<std::decay_t<A>> && ...),
                  "ProcessPoolExecutor: an argument type cannot cross the process boundary; "
                  "specialise gilio::concurrent::serializer<T> (see gilio/concurrent/wire.hpp)");
    static_assert(sizeof...(Given) == sizeof...(A),
                  "ProcessPoolExecutor::submit: the number of arguments does not match fn's");
    wire::Writer w;
    (put_as<std::decay_t<A>>(w, std::forward<Given>(given)), ...);  // as a tuple of A..., in order
    return std::move(w.data());
  }

 private:
  // An argument that already has its parameter's type is written from where it is (a 64 MiB
  // string was copied into a tuple first); any other is converted to that type, as the call
  // would convert it.
  template <class T, class G>
  static void put_as(wire::Writer& w, G&& given) {
    if constexpr (std::is_same_v<std::remove_cvref_t<G>, T>) {
      wire::put(w, given);
    } else {
      wire::put(w, static_cast<T>(std::forward<G>(given)));
    }
  }
};

template <class Fp>
struct Chunked {
  static_assert(sizeof(Fp) == 0,
                "ProcessPoolExecutor::map with a chunksize: fn must take exactly one argument");
};
template <class R, class A>
struct Chunked<R (*)(A)> {
  using item = std::decay_t<A>;
  static constexpr Trampoline trampoline = &call_chunk_in_worker<R, A>;
};

}  // namespace detail

class ProcessPoolExecutor {
 public:
  // max_workers = 0: as many as the machine has cores. max_tasks_per_child = n > 0: a worker
  // exits after n calls and a fresh one replaces it (Python's max_tasks_per_child); 0: never.
  explicit ProcessPoolExecutor(std::size_t max_workers = 0, std::size_t max_tasks_per_child = 0);
  ~ProcessPoolExecutor();
  ProcessPoolExecutor(const ProcessPoolExecutor&) = delete;
  ProcessPoolExecutor& operator=(const ProcessPoolExecutor&) = delete;

  // fn: a plain function or a captureless lambda (converted to a function pointer).
  template <class F, class... Args>
  auto submit(F fn, Args&&... args) {
    auto fp = checked_function(fn);
    using Sig = detail::Signature<decltype(fp)>;
    using R = typename Sig::result;
    static_assert(std::is_void_v<R> || wire::Serializable<R>,
                  "ProcessPoolExecutor: the result type cannot cross the process boundary; "
                  "specialise gilio::concurrent::serializer<T> (see gilio/concurrent/wire.hpp)");
    return submit_encoded<R>(Sig::trampoline, reinterpret_cast<std::uintptr_t>(fp),
                             Sig::encode(std::forward<Args>(args)...));
  }

  // Calls fn on every element (in the pool); the results in order; the first exception rethrown.
  // chunksize = n > 1 sends the inputs n at a time, one call per chunk (Python's chunksize):
  // far fewer messages when each call is tiny. An exception fails its whole chunk.
  template <class F, class Range>
  auto map(F fn, const Range& inputs, std::size_t chunksize = 1) {
    if (chunksize == 0)
      throw std::invalid_argument("ProcessPoolExecutor::map: chunksize must be >= 1");
    auto fp = checked_function(fn);
    using R = typename detail::Signature<decltype(fp)>::result;
    using Chunk = detail::Chunked<decltype(fp)>;
    static_assert(!std::is_void_v<R>, "ProcessPoolExecutor::map: fn must return a value");
    if (chunksize == 1) return map_with(*this, fn, inputs);
    std::vector<Future<std::vector<R>>> futures;
    std::vector<typename Chunk::item> chunk;
    auto send = [&] {
      wire::Writer w;
      wire::put(w, chunk);
      futures.push_back(submit_encoded<std::vector<R>>(
          Chunk::trampoline, reinterpret_cast<std::uintptr_t>(fp), std::move(w.data())));
      chunk.clear();
    };
    for (const auto& x : inputs) {
      chunk.push_back(x);
      if (chunk.size() == chunksize) send();
    }
    if (!chunk.empty()) send();
    std::vector<R> out;
    for (auto& f : futures) {
      for (auto& r : f.result())
        out.push_back(std::move(r));
    }
    return out;
  }

  void shutdown(bool wait = true, bool cancel_futures = false);
  std::size_t max_workers() const noexcept { return max_workers_; }
  // The workers' process ids (empty before the first submit): for tests and monitoring.
  std::vector<pid_t> worker_pids() const;

  // What comes back for one call.
  struct Outcome {
    enum class Kind { value, remote_error, broken } kind;
    std::string bytes;  // the encoded value, or "type\0message" for a remote error
  };

 private:
  template <class F>
  static auto checked_function(F fn) {
    auto fp = +fn;  // a captureless lambda decays to a function pointer here
    static_assert(
        std::is_pointer_v<decltype(fp)> && std::is_function_v<std::remove_pointer_t<decltype(fp)>>,
        "ProcessPoolExecutor: fn must be a plain function or a captureless lambda (its code "
        "must exist in the worker; captures would not)");
    return fp;
  }

  // What the pool keeps for one call until it is answered: how to start or cancel it and where
  // its outcome goes. One allocation a call (two std::functions cost two).
  struct CallSink {
    virtual ~CallSink() = default;
    // start(false): mark it running (false if it was cancelled first); start(true): cancel it.
    virtual bool start(bool cancel) = 0;
    virtual void done(Outcome outcome) = 0;
  };
  template <class R>
  struct FutureSink final : CallSink {
    explicit FutureSink(Future<R> f) : future(std::move(f)) {}
    bool start(bool cancel) override {
      return cancel ? future.cancel() : future.set_running_or_notify_cancel();
    }
    void done(Outcome outcome) override { complete(future, std::move(outcome)); }
    Future<R> future;
  };

  template <class R>
  Future<R> submit_encoded(detail::Trampoline trampoline, std::uintptr_t fn, std::string request) {
    Future<R> future;
    enqueue(trampoline, fn, std::move(request), std::make_unique<FutureSink<R>>(future));
    return future;
  }

  template <class R>
  static void complete(Future<R>& future, Outcome outcome) {
    try {
      if (outcome.kind == Outcome::Kind::broken) {
        throw BrokenProcessPool(outcome.bytes);
      }
      if (outcome.kind == Outcome::Kind::remote_error) {
        const auto nul = outcome.bytes.find('\0');
        throw RemoteError(outcome.bytes.substr(0, nul), outcome.bytes.substr(nul + 1));
      }
      if constexpr (std::is_void_v<R>) {
        future.set_result();
      } else {
        wire::Reader r(outcome.bytes);
        future.set_result(wire::get<R>(r));
      }
    } catch (...) {
      future.set_exception(std::current_exception());
    }
  }
  void enqueue(detail::Trampoline trampoline, std::uintptr_t fn, std::string args,
               std::unique_ptr<CallSink> sink);

  struct Impl;
  std::size_t max_workers_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace gilio::concurrent
