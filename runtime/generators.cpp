// runtime/generators.cpp — the untyped half of async generators (gilio/asyncio/generators.hpp):
// aclose(), and the loop's part, which asyncio plays through sys.set_asyncgen_hooks.
//
// Mirrors: async_gen_athrow_send in Objects/genobject.c (aclose: GeneratorExit in, "ignored
// GeneratorExit" if the body yields again) and, in Lib/asyncio/base_events.py,
// _asyncgen_firstiter_hook (add_asyncgen), _asyncgen_finalizer_hook (finalize_asyncgen) and
// shutdown_asyncgens.
//
// Who frees a frame. The AsyncGenerator handle owns it, until the loop takes over a generator
// to close it — the finalizer's task, or shutdown_asyncgens(). From then a LoopHold (below) is
// the other owner: if the handle goes first (handle_gone), the hold frees the frame when the
// loop is done closing it; if the hold goes first, the handle frees it as usual. A hold that
// never runs — a finalizer's callback or task dropped by a closing loop — still frees it: the
// hold is a value captured by the callback and a parameter of the task's coroutine, so it is
// destroyed with them.
#include <cstdio>
#include <string>
#include <vector>

#include "gilio/asyncio.hpp"
#include "gilio/asyncio/generators.hpp"

namespace gilio::asyncio {
namespace detail {

namespace {

// The loop's share of a generator it closes (see the top of the file).
class LoopHold {
 public:
  explicit LoopHold(AsyncGenCore* g) noexcept : g_(g) { g_->held_by_loop = true; }
  LoopHold(LoopHold&& o) noexcept : g_(std::exchange(o.g_, nullptr)) {}
  LoopHold& operator=(LoopHold&&) = delete;
  ~LoopHold() {
    if (g_ == nullptr) return;
    g_->held_by_loop = false;
    if (g_->handle_gone) g_->frame().destroy();
  }
  AsyncGenCore& operator*() const noexcept { return *g_; }

 private:
  AsyncGenCore* g_;
};

// The task that closes a generator for the loop.
Coro<void> close_for_loop(LoopHold g) {
  co_await close_async_generator(*g);
}

std::string describe(const AsyncGenCore& g) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "<async_generator object at %p>", g.frame().address());
  return buf;
}

}  // namespace

void AsyncGenCore::first_step() noexcept {
  if (EventLoop* running = running_loop()) running->add_asyncgen(*this);
}

void AsyncGenCore::leave_loop() noexcept {
  unlink();
  loop = nullptr;
}

void AsyncGenCore::already_running(const char* what) {
  throw std::runtime_error(std::string(what) + ": asynchronous generator is already running");
}

Coro<void> close_async_generator(AsyncGenCore& g) {
  g.check_not_running("aclose()");
  if (g.state() == AsyncGenCore::State::closed) co_return;
  if (g.state() == AsyncGenCore::State::created) {
    g.close_unstarted();
    co_return;
  }
  g.throw_at_yield(std::make_exception_ptr(GeneratorExit()));
  co_await AsyncGenStep(&g, "aclose()");
  if (g.state() == AsyncGenCore::State::parked) {
    throw std::runtime_error("async generator ignored GeneratorExit");
  }
  if (std::exception_ptr e = g.take_error(); e && !holds<GeneratorExit>(e))
    std::rethrow_exception(e);
}

void drop_async_generator(AsyncGenCore& g) noexcept {
  if (g.held_by_loop) {  // being closed by its loop, which frees it when done
    g.handle_gone = true;
    return;
  }
  if (g.state() == AsyncGenCore::State::parked && g.loop != nullptr) {
    g.handle_gone = true;
    g.loop->finalize_asyncgen(g);
    return;
  }
  g.frame().destroy();
}

}  // namespace detail

void EventLoop::add_asyncgen(detail::AsyncGenCore& g) noexcept {
  g.loop = this;
  asyncgens_.push_back(&g);
}

void EventLoop::finalize_asyncgen(detail::AsyncGenCore& g) noexcept {
  // Once shutdown_asyncgens() was called, the generator stays listed: the shutdown, or close(),
  // closes it and frees it.
  if (asyncgens_shutdown_) return;
  g.leave_loop();
  // As asyncio's hook: the task is made by a callback, not here — so not from inside whatever
  // destroyed the handle, and never eagerly — in a copy of the context that dropped it.
  try {
    call_soon([this, hold = detail::LoopHold(&g)]() mutable {
      create_task(detail::close_for_loop(std::move(hold)));
    });
  } catch (...) {  // no memory for the callback: the hold, destroyed, freed the frame
  }
}

Coro<void> EventLoop::shutdown_asyncgens() {
  asyncgens_shutdown_ = true;
  // Closing one generator may start or drop others (one that consumed another), which then
  // need closing too: round after round until none is left.
  while (!asyncgens_.empty()) {
    std::vector<Task<void>> closing;
    std::vector<std::string> names;
    while (detail::AsyncGenCore* g = asyncgens_.pop_front()) {
      g->loop = nullptr;
      names.push_back(detail::describe(*g));
      closing.push_back(create_task(detail::close_for_loop(detail::LoopHold(g))));
    }
    std::vector<Outcome<void>> outcomes = co_await gather(return_exceptions, std::move(closing));
    for (std::size_t i = 0; i < outcomes.size(); ++i) {
      if (outcomes[i].has_error()) {
        call_exception_handler(ExceptionContext(
            "an error occurred during closing of asynchronous generator " + names[i],
            outcomes[i].error()));
      }
    }
  }
}

void EventLoop::detach_asyncgens() noexcept {
  while (detail::AsyncGenCore* g = asyncgens_.pop_front()) {
    g->loop = nullptr;
    if (g->handle_gone) g->frame().destroy();
  }
}

}  // namespace gilio::asyncio
