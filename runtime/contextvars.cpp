// runtime/contextvars.cpp — the contexts behind gilio/contextvars.hpp; mirrors Python/context.c.
//
// The header's essay says what a context is and which one is current. This file holds the
// parts that touch thread-local state: the entered slot (tl_entered), each thread's own context
// (tl_base), and the walk of rules 1-3 that finds the current context. A set() copies the sorted
// array of the current map with one entry added or replaced — where CPython's context.c builds a
// new HAMT node path — and points the current context at the copy.
#include <algorithm>

#include "gilio/asyncio/futures.hpp"
#include "gilio/contextvars.hpp"

namespace gilio::contextvars {
namespace detail {

std::atomic<bool> any_set_flag{false};
constinit thread_local ContextRef* tl_entered = nullptr;

namespace {

// Each thread's own context (rule 3): empty when the thread starts, as a new Python thread's is.
thread_local ContextRef tl_base;

// A copy of `m` with `var` set to `value` (value null: with `var` removed); null if empty.
MappingRef with(const Mapping* m, std::uint64_t var, std::shared_ptr<const void> value) {
  auto* out = new Mapping;
  MappingRef ref(out);
  const std::size_t n = m != nullptr ? m->entries.size() : 0;
  out->entries.reserve(n + 1);
  std::size_t i = 0;
  for (; i < n && m->entries[i].var < var; ++i)
    out->entries.push_back(m->entries[i]);
  if (value) out->entries.push_back({var, std::move(value)});
  if (i < n && m->entries[i].var == var) ++i;  // its old value: replaced, or removed
  for (; i < n; ++i)
    out->entries.push_back(m->entries[i]);
  if (out->entries.empty()) return MappingRef();
  return ref;
}

// The current context's slot, without making a task's cold part for it: null for a task whose
// context is still empty and has no slot.
const ContextRef* current_ref() noexcept {
  if (tl_entered != nullptr) return tl_entered;
  if (const asyncio::detail::TaskCore* t = asyncio::detail::step_task) return t->context_if_any();
  return &tl_base;
}

}  // namespace

const Mapping::Entry* Mapping::find(std::uint64_t var) const noexcept {
  auto it = std::lower_bound(entries.begin(), entries.end(), var,
                             [](const Entry& e, std::uint64_t v) { return e.var < v; });
  return it != entries.end() && it->var == var ? &*it : nullptr;
}

ContextState& ContextRef::materialize() {
  if (ContextState* s = state()) return *s;
  auto* s = new ContextState;
  if (bits_ != 0) s->data = MappingRef(const_cast<Mapping*>(as_mapping()));  // takes its reference
  bits_ = reinterpret_cast<std::uintptr_t>(s);
  return *s;
}

void ContextRef::release() noexcept {
  if (const Mapping* m = as_mapping()) {
    MappingRef::release(const_cast<Mapping*>(m));
  } else if (ContextState* s = state(); s->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) {
    delete s;
  }
}

ContextRef& current_slot() {
  if (tl_entered != nullptr) return *tl_entered;
  if (asyncio::detail::TaskCore* t = asyncio::detail::step_task) return t->context_slot();
  return tl_base;
}

const Mapping* current_mapping() noexcept {
  const ContextRef* r = current_ref();
  return r != nullptr ? r->mapping() : nullptr;
}

ContextRef object_holding(const Mapping* m) {
  ContextRef out(new ContextState);
  out.state()->data = MappingRef::share(m);  // shared, not copied
  return out;
}

ContextRef copy_current() {
  return object_holding(current_mapping());
}

ContextRef capture() {
  return ContextRef::of_mapping(MappingRef::share(current_mapping()));
}

void EnteredScope::mark(ContextState* s) {
  // The context of the task whose step runs here counts as entered too: asyncio's Task.__step
  // runs each step under self._context.run(). Checked here, where a context object is entered,
  // rather than by marking it at every step.
  const asyncio::detail::TaskCore* t = asyncio::detail::step_task;
  const ContextRef* own = t != nullptr ? t->context_if_any() : nullptr;
  if ((own != nullptr && own->state() == s) || s->entered.exchange(true, std::memory_order_acquire))
    throw std::runtime_error("cannot enter context: the context is already entered");
  marked_ = s;
}

std::uint64_t next_var_id() noexcept {
  static std::atomic<std::uint64_t> next{1};
  return next.fetch_add(1, std::memory_order_relaxed);
}

std::shared_ptr<const void> set_value(std::uint64_t var, std::shared_ptr<const void> value,
                                      ContextState** where) {
  ContextState& ctx = current_slot().materialize();
  std::shared_ptr<const void> old;
  if (const Mapping* m = ctx.data.get()) {
    if (const Mapping::Entry* e = m->find(var)) old = e->value;
  }
  ctx.data = with(ctx.data.get(), var, std::move(value));
  any_set_flag.store(true, std::memory_order_relaxed);
  *where = &ctx;
  return old;
}

void restore_value(std::uint64_t var, const std::shared_ptr<const void>& old,
                   const ContextState* where) {
  ContextRef& slot = current_slot();
  if (slot.state() != where) {
    throw std::invalid_argument("Token was created in a different Context");
  }
  slot.state()->data = with(slot.mapping(), var, old);
}

}  // namespace detail

Context Context::copy() const {
  return Context(detail::object_holding(ref_.mapping()));
}

Context copy_context() {
  return Context(detail::copy_current());
}

}  // namespace gilio::contextvars
