// gilio/contextvars.hpp — ContextVar, Token, Context, copy_context; mirrors Python's
// contextvars module (PEP 567; the C code is Python/context.c) and how asyncio uses it.
//
// A context variable is a global whose value depends on where the code that reads it runs. The
// classic use is a request id that a server sets once per connection and a logger deep below
// reads, with no parameter threaded through every call — a thread-local cannot do it, because
// one thread runs every connection's task. Each task runs in a context of its own, a copy of
// the context that created it, so a value set in one task is seen by the code that task runs
// (and by the tasks it creates) but not by its siblings or its parent:
//
//     request_id = ContextVar("request_id")     ContextVar<std::string> request_id("request_id");
//     async def handle(id):                     Coro<void> handle(std::string id) {
//         request_id.set(id)                      request_id.set(id);
//         await log("start")  # reads it          co_await log("start");  // reads it
//                                               }
//
// How it works. A Context is a map from variables to values, and it is never changed in place:
// set() builds a new map with one entry replaced and points the context at it. So a copy of a
// context is a pointer to the same map — copying costs a reference count, whatever the number
// of variables — and a copy set later does not disturb the original. CPython keeps the map in a
// HAMT, a persistent hash trie with O(log n) updates; here it is a small sorted array copied on
// each set(), which is faster for the handful of variables a program has and slower past
// hundreds.
//
// Which context is current. CPython's thread state points at the current context, and every
// step of a task swaps it in and out (Task.__step runs under self._context.run). Here no step
// pays for that: the current context is worked out when a variable is read or set —
//   1. the context a Context::run or a loop callback has entered on this thread, if any;
//   2. else the context of the task whose step is running (asyncio::current_task());
//   3. else this thread's own context, which every thread starts empty (as in Python 3.11-3.13).
// A task that never sets a variable never gets a context object of its own: an empty context
// is a null pointer until the first set() makes it a real one. And create_task copies the
// creator's context only once some variable has been set somewhere in the process (one global
// flag, read without a lock), so a program that does not use context variables pays one load
// and one branch per create_task and call_soon.
//
// Where asyncio copies the context, gilio does too:
//   - create_task (and everything built on it: gather, TaskGroup, wait_for...) copies the
//     current context, or takes the one given (create_task's `context=`);
//   - call_soon, call_later, call_at and call_soon_threadsafe copy the caller's context, and
//     the callback runs in that copy (Handle._context); add_done_callback likewise;
//   - to_thread copies it into the worker thread (run_in_executor does not, as in asyncio);
//   - asyncio::Runner takes one copy when it starts, and each of its run() calls runs its main
//     task in that same context, as asyncio.Runner(context=None) does.
//
// Values are stored as std::shared_ptr<const T>: get() returns a copy of the value. A variable
// is known by a number it draws when it is made, never by its address, so a variable destroyed
// while a context still holds a value for it cannot be confused with a new one at that address.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace gilio::contextvars {

// Python's LookupError, which ContextVar.get() raises when the variable has no value in the
// current context and no default.
class LookupError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

namespace detail {

// The immutable map: (variable number, value) pairs sorted by number. Shared by every context
// that holds it, reference-counted, never changed after it is built.
struct Mapping {
  struct Entry {
    std::uint64_t var;
    std::shared_ptr<const void> value;
  };
  mutable std::atomic<std::size_t> refs{1};  // counted through const pointers too
  std::vector<Entry> entries;
  const Entry* find(std::uint64_t var) const noexcept;
};

// An owning pointer to a Mapping.
class MappingRef {
 public:
  MappingRef() noexcept = default;
  explicit MappingRef(Mapping* m) noexcept : m_(m) {}  // adopts the reference
  static MappingRef share(const Mapping* m) noexcept {
    if (m != nullptr) m->refs.fetch_add(1, std::memory_order_relaxed);
    return MappingRef(const_cast<Mapping*>(m));
  }
  MappingRef(const MappingRef& o) noexcept : MappingRef(share(o.m_)) {}
  MappingRef(MappingRef&& o) noexcept : m_(std::exchange(o.m_, nullptr)) {}
  MappingRef& operator=(MappingRef o) noexcept {
    std::swap(m_, o.m_);
    return *this;
  }
  ~MappingRef() {
    if (m_ != nullptr) release(m_);
  }
  const Mapping* get() const noexcept { return m_; }
  Mapping* take() noexcept { return std::exchange(m_, nullptr); }
  static void release(Mapping* m) noexcept {
    if (m->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) delete m;
  }

 private:
  Mapping* m_ = nullptr;
};

// Python's Context object: the map it points at now, and whether some thread has it entered.
struct ContextState {
  std::atomic<std::size_t> refs{1};
  MappingRef data;  // null: empty
  std::atomic<bool> entered{false};
};

// A place a context lives: a task's, a callback's, a thread's, a Context handle's. One word,
// holding one of three things:
//   - nothing: an empty context that nobody has asked to be an object yet;
//   - a ContextState: a context object, with an identity that tokens and get_context() see;
//   - a Mapping, tagged in the low bit: a copy of another context that has not been set in
//     or asked for yet. Copying a context for each task and callback is then one reference
//     count on the shared map; the object is made only if the copy is ever set in
//     (materialize), which most copies never are.
class ContextRef {
 public:
  constexpr ContextRef() noexcept = default;
  explicit ContextRef(ContextState* s) noexcept : bits_(reinterpret_cast<std::uintptr_t>(s)) {}
  static ContextRef of_mapping(MappingRef m) noexcept {
    ContextRef r;
    if (Mapping* p = m.take()) r.bits_ = reinterpret_cast<std::uintptr_t>(p) | kMapTag;
    return r;
  }
  ContextRef(const ContextRef& o) noexcept : bits_(o.bits_) {
    if (const Mapping* m = as_mapping()) {
      m->refs.fetch_add(1, std::memory_order_relaxed);
    } else if (ContextState* s = state()) {
      s->refs.fetch_add(1, std::memory_order_relaxed);
    }
  }
  ContextRef(ContextRef&& o) noexcept : bits_(std::exchange(o.bits_, 0)) {}
  ContextRef& operator=(ContextRef o) noexcept {
    std::swap(bits_, o.bits_);
    return *this;
  }
  ~ContextRef() {
    if (bits_ != 0) release();
  }
  explicit operator bool() const noexcept { return bits_ != 0; }
  // The context object, or null if this holds nothing or only a map.
  ContextState* state() const noexcept {
    return bits_ & kMapTag ? nullptr : reinterpret_cast<ContextState*>(bits_);
  }
  // The map the context holds now (null: empty).
  const Mapping* mapping() const noexcept {
    if (const Mapping* m = as_mapping()) return m;
    const ContextState* s = state();
    return s != nullptr ? s->data.get() : nullptr;
  }
  // This slot's context as an object, made now (holding the map it had) if it was not one.
  ContextState& materialize();

 private:
  static constexpr std::uintptr_t kMapTag = 1;
  const Mapping* as_mapping() const noexcept {
    return bits_ & kMapTag ? reinterpret_cast<const Mapping*>(bits_ & ~kMapTag) : nullptr;
  }
  void release() noexcept;
  std::uintptr_t bits_ = 0;
};

// Set once any variable has been set anywhere: until then every context is empty, and
// create_task and call_soon need not copy one.
extern std::atomic<bool> any_set_flag;
inline bool any_set() noexcept {
  return any_set_flag.load(std::memory_order_relaxed);
}

// The slot entered on this thread by Context::run or by a running loop callback (rule 1 above);
// null when none is.
extern constinit thread_local ContextRef* tl_entered;

// The current context's slot (rules 1-3), for set(); the current context's map, for get().
ContextRef& current_slot();
const Mapping* current_mapping() noexcept;
// A new context holding the current one's map: what copy_context() returns. capture() is the
// same for the runtime's own use, but gives null where the current context is empty.
ContextRef copy_current();
ContextRef capture();
// A new context object holding `m` (shared).
ContextRef object_holding(const Mapping* m);

// Enters `slot` on this thread for a scope: std::runtime_error if its context is entered
// already (Python: "cannot enter context: ... is already entered"). A slot that holds no context
// object (empty, or a private copy of a map) cannot be entered elsewhere, so entering it is two
// thread-local stores, inline: every loop callback does it.
class EnteredScope {
 public:
  explicit EnteredScope(ContextRef& slot) : outer_(tl_entered) {
    if (ContextState* s = slot.state()) [[unlikely]]
      mark(s);
    tl_entered = &slot;
  }
  ~EnteredScope() {
    tl_entered = outer_;
    if (marked_ != nullptr) [[unlikely]]
      marked_->entered.store(false, std::memory_order_release);
  }
  EnteredScope(const EnteredScope&) = delete;
  EnteredScope& operator=(const EnteredScope&) = delete;

 private:
  void mark(ContextState* s);
  ContextRef* outer_;
  ContextState* marked_ = nullptr;
};

std::uint64_t next_var_id() noexcept;
// set() and reset()'s work, type-erased: the value the variable had in the current context
// (null if none), and the current context's state, which the token remembers.
std::shared_ptr<const void> set_value(std::uint64_t var, std::shared_ptr<const void> value,
                                      ContextState** where);
void restore_value(std::uint64_t var, const std::shared_ptr<const void>& old,
                   const ContextState* where);
}  // namespace detail

template <class T>
class ContextVar;

// What ContextVar::set returns: enough to undo that set() with ContextVar::reset. Used once.
template <class T>
class Token {
 public:
  Token(Token&&) noexcept = default;
  Token& operator=(Token&&) noexcept = default;
  Token(const Token&) = delete;
  Token& operator=(const Token&) = delete;
  const ContextVar<T>& var() const noexcept { return *var_; }
  // The value before the set(); nullopt where the variable had none (Python's Token.MISSING).
  std::optional<T> old_value() const {
    if (!old_) return std::nullopt;
    return *static_cast<const T*>(old_.get());
  }

 private:
  friend class ContextVar<T>;
  Token(const ContextVar<T>* var, std::shared_ptr<const void> old, detail::ContextRef ctx)
      : var_(var), old_(std::move(old)), ctx_(std::move(ctx)) {}
  const ContextVar<T>* var_;
  std::shared_ptr<const void> old_;
  detail::ContextRef ctx_;
  bool used_ = false;
};

// contextvars.ContextVar(name, default=...). T must be copyable; values are kept as
// std::shared_ptr<const T>. Not copyable: a variable is one identity.
template <class T>
class ContextVar {
 public:
  explicit ContextVar(std::string name) : name_(std::move(name)), id_(detail::next_var_id()) {}
  ContextVar(std::string name, T default_value)
      : name_(std::move(name)),
        id_(detail::next_var_id()),
        default_(std::make_shared<const T>(std::move(default_value))) {}
  ContextVar(const ContextVar&) = delete;
  ContextVar& operator=(const ContextVar&) = delete;

  const std::string& name() const noexcept { return name_; }
  // The value in the current context; else the variable's default; else LookupError.
  T get() const {
    if (const T* v = find()) return *v;
    if (default_) return *static_cast<const T*>(default_.get());
    throw LookupError("ContextVar '" + name_ + "' has no value");
  }
  // The value in the current context, else `fallback` (ContextVar.get(default)): the argument
  // wins over the variable's own default, as in Python.
  T get(T fallback) const {
    if (const T* v = find()) return *v;
    return fallback;
  }
  // Sets the value in the current context; the token undoes it.
  Token<T> set(T value) {
    detail::ContextState* where = nullptr;
    auto old = detail::set_value(id_, std::make_shared<const T>(std::move(value)), &where);
    where->refs.fetch_add(1, std::memory_order_relaxed);
    return Token<T>(this, std::move(old), detail::ContextRef(where));
  }
  // Puts back the value the token's set() replaced (or removes the variable if it had none).
  // std::runtime_error if the token was used already; std::invalid_argument if it came from
  // another variable or was made in another context — Python's RuntimeError and ValueError.
  void reset(Token<T>& token) {
    if (token.used_) throw std::runtime_error("Token has already been used once");
    if (token.var_ != this) {
      throw std::invalid_argument("Token was created by a different ContextVar");
    }
    detail::restore_value(id_, token.old_, token.ctx_.state());
    token.used_ = true;
  }
  std::uint64_t id() const noexcept { return id_; }

 private:
  const T* find() const noexcept {
    const detail::Mapping* m = detail::current_mapping();
    if (m == nullptr) return nullptr;
    const detail::Mapping::Entry* e = m->find(id_);
    return e != nullptr ? static_cast<const T*>(e->value.get()) : nullptr;
  }
  std::string name_;
  std::uint64_t id_;
  std::shared_ptr<const void> default_;
};

// contextvars.Context: a handle to one context object; copies of the handle are the same
// context (compare with ==). Context() is a new empty one.
class Context {
 public:
  Context() : ref_(new detail::ContextState) {}
  explicit Context(detail::ContextRef ref) : ref_(std::move(ref)) { ref_.materialize(); }

  // Context.run(fn): calls fn() with this context current on this thread, so that what fn sets
  // stays in this context. std::runtime_error if the context is entered already (by an outer
  // run() here, or on another thread) — a task's own context counts as entered while the task
  // runs, as asyncio's steps run under it.
  template <class F>
  decltype(auto) run(F&& fn) {
    detail::ContextRef keep = ref_;  // the handle may go during fn; the context may not
    detail::EnteredScope scope(keep);
    return std::forward<F>(fn)();
  }
  // Read access, as a Python Context is a read-only mapping.
  template <class T>
  std::optional<T> get(const ContextVar<T>& var) const {
    const detail::Mapping* m = ref_.mapping();
    const detail::Mapping::Entry* e = m != nullptr ? m->find(var.id()) : nullptr;
    if (e == nullptr) return std::nullopt;
    return *static_cast<const T*>(e->value.get());
  }
  template <class T>
  bool contains(const ContextVar<T>& var) const {
    const detail::Mapping* m = ref_.mapping();
    return m != nullptr && m->find(var.id()) != nullptr;
  }
  std::size_t size() const noexcept {
    const detail::Mapping* m = ref_.mapping();
    return m != nullptr ? m->entries.size() : 0;
  }
  // Context.copy(): a new context with the same values.
  Context copy() const;
  friend bool operator==(const Context& a, const Context& b) noexcept {
    return a.ref_.state() == b.ref_.state();
  }
  const detail::ContextRef& ref() const noexcept { return ref_; }

 private:
  detail::ContextRef ref_;
};

// contextvars.copy_context(): a new context with the current context's values.
Context copy_context();

}  // namespace gilio::contextvars
