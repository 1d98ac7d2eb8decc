// runtime/io_op.hpp — IoOp, the awaitable behind every I/O operation (internal).
//
// It lives in the awaiting coroutine's frame. await_suspend queues one submission whose
// user_data points at this object; complete() records the result and wakes the task. The task
// resumes only after complete() has run — also when cancelled: cancel_wait() submits an
// async-cancel and keeps waiting for the original completion (DESIGN.md invariant 1).
// An optional second callable sees every completion (result and flags) before the task is
// woken — a stream's pooled recv copies its bytes out there and returns the kernel's buffer at
// once, even if the task is cancelled before it runs again.
#pragma once

#include <cerrno>
#include <coroutine>
#include <cstdint>

#include "gilio/asyncio/futures.hpp"
#include "uring.hpp"

namespace gilio::asyncio::detail {

struct NoCompletionHook {
  void operator()(int, std::uint32_t) const noexcept {}
};

template <class Prep, class OnComplete = NoCompletionHook>
class [[nodiscard]] IoOp final : public Completion, public Suspension {
 public:
  explicit IoOp(Prep prep, OnComplete on_complete = {})
      : prep_(std::move(prep)), on_complete_(std::move(on_complete)) {}
  IoOp(const IoOp&) = delete;
  IoOp& operator=(const IoOp&) = delete;

  bool await_ready() const noexcept { return false; }
  template <class P>
  void await_suspend(std::coroutine_handle<P> h) {
    task_ = &task_of(h);
    backend_ = &task_->loop()->backend();
    prep_(*backend_, this);
    task_->suspend(h, this);
  }
  // The kernel's result: >= 0, or -errno.
  int await_resume() {
    if (cancel_sent_ && (result_ == -ECANCELED || result_ == -EINTR)) {
      task_->resume_check(true);  // throws CancelledError
    }
    if (cancel_sent_) {
      task_->defer_cancel();  // the operation won the race: keep its result, cancel later
    } else {
      task_->resume_check(false);
    }
    return result_;
  }
  void complete(int result, std::uint32_t flags) override {
    on_complete_(result, flags);
    result_ = result;
    done_ = true;
    task_->wake();
  }
  bool cancel_wait() noexcept override {
    if (done_) return false;
    if (!cancel_sent_) {
      cancel_sent_ = true;
      try {
        backend_->cancel(this);
      } catch (...) {  // cannot even queue the cancel: the operation completes on its own
      }
    }
    return true;  // the task wakes when the original completion arrives
  }

 private:
  Prep prep_;
  [[no_unique_address]] OnComplete on_complete_;
  TaskCore* task_ = nullptr;
  Backend* backend_ = nullptr;
  int result_ = 0;
  bool done_ = false;
  bool cancel_sent_ = false;
};

}  // namespace gilio::asyncio::detail
