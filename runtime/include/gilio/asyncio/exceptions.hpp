// gilio/asyncio/exceptions.hpp — asyncio's exceptions; mirrors Lib/asyncio/exceptions.py.
//
// CancelledError is the odd one out, on purpose: since Python 3.8 it derives from
// BaseException, not Exception, so that `except Exception:` cannot swallow a cancellation by
// accident. Here it derives from nothing in <stdexcept>: `catch (const std::exception&)` lets
// it pass, and only `catch (const CancelledError&)` or `catch (...)` stops it. GeneratorExit,
// Python's builtin that async generators see, is the other such. Everything else derives from
// std::exception (through std::runtime_error), so it carries a what().
#pragma once

#include <cstddef>
#include <exception>
#include <stdexcept>
#include <string>
#include <system_error>
#include <typeinfo>
#include <vector>

namespace gilio::asyncio {

// Thrown at a task's current co_await when the task is cancelled. Not a std::exception.
class CancelledError {
 public:
  CancelledError() = default;
  explicit CancelledError(std::string message) : message_(std::move(message)) {}
  const std::string& message() const noexcept { return message_; }
  const char* what() const noexcept {
    return message_.empty() ? "CancelledError" : message_.c_str();
  }

 private:
  std::string message_;
};

// Thrown at an asynchronous generator's parked co_yield by aclose() (generators.hpp), as Python
// throws GeneratorExit into the frame: the generator's clean-up runs, then it must end. Not a
// std::exception either (Python's derives from BaseException), so that a generator's
// `catch (const std::exception&)` lets it through.
class GeneratorExit {
 public:
  const char* what() const noexcept { return "GeneratorExit"; }
};

namespace detail {
// Does e hold an E (or an exception derived from E)?
template <class E>
bool holds(const std::exception_ptr& e) noexcept {
  if (!e) return false;
#if defined(__GLIBCXX__)
  // libstdc++ tells the exception's type without throwing it: a cancelled task asks this as it
  // ends, and a rethrow and catch would cost it about 10,000 instructions. A derived type still
  // takes the general way below.
  if (const std::type_info* type = e.__cxa_exception_type(); type != nullptr && *type == typeid(E))
    return true;
#endif
  try {
    std::rethrow_exception(e);
  } catch (const E&) {
    return true;
  } catch (...) {
    return false;
  }
}
}  // namespace detail

// A deadline passed (wait_for, timeout, timeout_at). Python's builtin TimeoutError.
class TimeoutError : public std::runtime_error {
 public:
  TimeoutError() : std::runtime_error("TimeoutError") {}
  explicit TimeoutError(const std::string& what) : std::runtime_error(what) {}
};

// An operation not allowed in the current state (a result that is not ready yet, a result set
// twice).
class InvalidStateError : public std::runtime_error {
  using std::runtime_error::runtime_error;
};

// StreamReader::readexactly or readuntil hit EOF first: `partial` holds what was read.
// `expected` is readexactly's n, and std::string::npos for readuntil (asyncio's None).
class IncompleteReadError : public std::runtime_error {
 public:
  IncompleteReadError(std::string partial_bytes, std::size_t expected_bytes)
      : std::runtime_error(std::to_string(partial_bytes.size()) + " bytes read on a total of " +
                           (expected_bytes == std::string::npos ? std::string("undefined")
                                                                : std::to_string(expected_bytes)) +
                           " expected bytes"),
        partial(std::move(partial_bytes)),
        expected(expected_bytes) {}
  std::string partial;
  std::size_t expected;
};

// StreamReader::readuntil found no separator within the limit.
class LimitOverrunError : public std::runtime_error {
 public:
  LimitOverrunError(const std::string& what, std::size_t consumed_bytes)
      : std::runtime_error(what), consumed(consumed_bytes) {}
  std::size_t consumed;
};

class QueueFull : public std::runtime_error {
 public:
  QueueFull() : std::runtime_error("QueueFull: the queue is full") {}
};
class QueueEmpty : public std::runtime_error {
 public:
  QueueEmpty() : std::runtime_error("QueueEmpty: the queue is empty") {}
};
class QueueShutDown : public std::runtime_error {
 public:
  QueueShutDown() : std::runtime_error("QueueShutDown: the queue is shut down") {}
};

class BrokenBarrierError : public std::runtime_error {
 public:
  BrokenBarrierError() : std::runtime_error("BrokenBarrierError: the barrier is broken") {}
};

// Several exceptions at once (TaskGroup). Python's ExceptionGroup / BaseExceptionGroup.
class ExceptionGroup : public std::runtime_error {
 public:
  ExceptionGroup(const std::string& message, std::vector<std::exception_ptr> exceptions)
      : std::runtime_error(describe(message, exceptions)), exceptions_(std::move(exceptions)) {}
  const std::vector<std::exception_ptr>& exceptions() const noexcept { return exceptions_; }

 private:
  static std::string describe(const std::string& message,
                              const std::vector<std::exception_ptr>& exceptions) {
    return message + " (" + std::to_string(exceptions.size()) + " sub-exception" +
           (exceptions.size() == 1 ? "" : "s") + ")";
  }
  std::vector<std::exception_ptr> exceptions_;
};

// Python's OSError family, for I/O. Each carries the errno (code()) and says what failed and on
// which address or path. os_error() picks the subclass from the errno, as Python does.
class OSError : public std::system_error {
 public:
  OSError(int err, const std::string& what)
      : std::system_error(err, std::generic_category(), what) {}
};
class ConnectionError : public OSError {
  using OSError::OSError;
};
class ConnectionRefusedError : public ConnectionError {
  using ConnectionError::ConnectionError;
};
class ConnectionResetError : public ConnectionError {
  using ConnectionError::ConnectionError;
};
class ConnectionAbortedError : public ConnectionError {
  using ConnectionError::ConnectionError;
};
class BrokenPipeError : public ConnectionError {
  using ConnectionError::ConnectionError;
};
class FileNotFoundError : public OSError {
  using OSError::OSError;
};
class FileExistsError : public OSError {
  using OSError::OSError;
};
class PermissionError : public OSError {
  using OSError::OSError;
};
class IsADirectoryError : public OSError {
  using OSError::OSError;
};
// No such process (ESRCH): a signal to a child that is gone.
class ProcessLookupError : public OSError {
  using OSError::OSError;
};
// A host name that does not resolve (Python's socket.gaierror). code() is getaddrinfo's error.
class NameResolutionError : public std::runtime_error {
 public:
  NameResolutionError(int gai_error, const std::string& what)
      : std::runtime_error(what), code_(gai_error) {}
  int code() const noexcept { return code_; }

 private:
  int code_;
};

// Throws the OSError subclass for `err` (an errno value), with `what` as its message.
[[noreturn]] void raise_os_error(int err, const std::string& what);

}  // namespace gilio::asyncio
