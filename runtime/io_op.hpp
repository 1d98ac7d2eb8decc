// runtime/io_op.hpp — IoOp, the awaitable behind every I/O operation (internal).
//
// It lives in the awaiting coroutine's frame. await_suspend queues one submission whose
// user_data points at this object; complete() records the result and wakes the task. The task
// resumes only after complete() has run — also when cancelled: cancel_wait() submits an
// async-cancel and keeps waiting for the original completion (DESIGN.md invariant 1).
// An optional second callable sees every completion (result and flags) before the task is
// woken — a stream's pooled recv copies its bytes out there and returns the kernel's buffer at
// once, even if the task is cancelled before it runs again. It returns true when the operation
// is over, or false to have it queued again without waking the task (a pooled recv that found
// the buffer ring empty, or a read to EOF that got bytes); a cancel already sent turns that into
// -ECANCELED instead.
#pragma once

#include <cerrno>
#include <coroutine>
#include <cstdint>

#include "gilio/asyncio/futures.hpp"
#include "uring.hpp"

namespace gilio::asyncio::detail {

struct NoCompletionHook {
  bool operator()(int, std::uint32_t) const noexcept { return true; }
};

// An operation that a cancel interrupted: EINTR, or one of the kernel's own "restart the call"
// codes (ERESTARTSYS = 512 to ERESTART_RESTARTBLOCK = 516), which should never reach user space
// but which a splice that an io-wq worker was running let through when cancelled (kernel 6.18,
// about one cancel in 40 in Streams.ASendfileCancelledMidSpliceStopsWhereThePositionSays).
constexpr bool interrupted(int result) noexcept {
  return result == -EINTR || (result <= -512 && result >= -516);
}

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
    start(task_of(h), h);
  }
  // The same, for an awaitable that owns this operation rather than being it.
  void start(TaskCore& task, std::coroutine_handle<> h) {
    task_ = &task;
    backend_ = &task.loop()->backend();
    prep_(*backend_, this);
    task.suspend(h, this);
  }
  // The kernel's result: >= 0, or -errno.
  int await_resume() {
    if (cancel_sent_ && (result_ == -ECANCELED || interrupted(result_))) {
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
    if (!on_complete_(result, flags)) {
      if (!cancel_sent_) {
        try {
          prep_(*backend_, this);
          return;        // in flight again; the task sleeps on
        } catch (...) {  // cannot queue it: end with the result that asked for a retry
        }
      } else {
        result = -ECANCELED;  // the cancel wins; what the hook already took stays taken
      }
    }
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
