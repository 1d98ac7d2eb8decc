// gilio/concurrent/wire.hpp — how arguments and results cross the process boundary.
//
// No CPython twin: CPython pickles (Lib/pickle.py) whatever it sends to a ProcessPoolExecutor
// worker. C++ has no reflection, so the types that may cross are the ones that say how:
//   * built in: arithmetic types and enums, std::string, std::vector, std::array, std::pair,
//     std::tuple, std::optional — nested as deep as you like;
//   * a user type opts in by specialising gilio::concurrent::serializer<T>:
//
//         template <> struct gilio::concurrent::serializer<Point> {
//           static void write(wire::Writer& w, const Point& p) { wire::put(w, p.x); wire::put(w,
//           p.y); } static Point read(wire::Reader& r) { auto x = wire::get<int>(r); return {x,
//           wire::get<int>(r)}; }
//         };
//
// A type that cannot cross is a compile-time error (ProcessPoolExecutor::submit static_asserts
// wire::Serializable). Bytes are in the machine's own order: both ends are the same binary.
// A message that ends early or is malformed throws wire::DecodeError — an error on that one
// future, never a crash.
#pragma once

#include <array>
#include <concepts>
#include <cstdint>
#include <cstring>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

namespace gilio::concurrent {

// Specialise for a user type (see above). The primary template is left undefined on purpose.
template <class T, class Enable = void>
struct serializer;

namespace wire {

class DecodeError : public std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Room for n more bytes at the end of s. Past a MiB, the new buffer's pages are filled in by the
// kernel in one call before anything is copied (runtime/big_string.hpp: a first touch of each
// page costs far more): a 64 MiB argument crosses in half the time.
void reserve_more(std::string& s, std::size_t n);
// A string holding `bytes`, a big one made the same way.
std::string copy_of(std::string_view bytes);

class Writer {
 public:
  void raw(const void* p, std::size_t n) {
    if (data_.size() + n > data_.capacity()) [[unlikely]]
      reserve_more(data_, n);
    data_.append(static_cast<const char*>(p), n);
  }
  std::string& data() noexcept { return data_; }

 private:
  std::string data_;
};

class Reader {
 public:
  explicit Reader(std::string_view bytes) : p_(bytes.data()), end_(bytes.data() + bytes.size()) {}
  void raw(void* out, std::size_t n) {
    if (static_cast<std::size_t>(end_ - p_) < n) throw DecodeError("wire: message ends early");
    std::memcpy(out, p_, n);
    p_ += n;
  }
  std::string_view take(std::size_t n) {
    if (static_cast<std::size_t>(end_ - p_) < n) throw DecodeError("wire: message ends early");
    std::string_view v(p_, n);
    p_ += n;
    return v;
  }
  std::size_t remaining() const noexcept { return static_cast<std::size_t>(end_ - p_); }

 private:
  const char* p_;
  const char* end_;
};

template <class T>
concept Serializable = requires(Writer& w, Reader& r, const T& v) {
  serializer<T>::write(w, v);
  { serializer<T>::read(r) } -> std::same_as<T>;
};

template <class T>
void put(Writer& w, const T& v) {
  serializer<T>::write(w, v);
}
template <class T>
T get(Reader& r) {
  return serializer<T>::read(r);
}

// A count, checked against what is left so that a corrupt length cannot allocate the world.
inline std::uint64_t get_count(Reader& r, std::size_t min_element_size) {
  const auto n = get<std::uint64_t>(r);
  if (min_element_size > 0 && n > r.remaining() / min_element_size) {
    throw DecodeError("wire: a length larger than the message");
  }
  return n;
}

}  // namespace wire

template <class T>
struct serializer<T, std::enable_if_t<std::is_arithmetic_v<T> || std::is_enum_v<T>>> {
  static void write(wire::Writer& w, const T& v) { w.raw(&v, sizeof v); }
  static T read(wire::Reader& r) {
    T v;
    r.raw(&v, sizeof v);
    return v;
  }
};

template <>
struct serializer<std::string> {
  static void write(wire::Writer& w, const std::string& s) {
    wire::put<std::uint64_t>(w, s.size());
    w.raw(s.data(), s.size());
  }
  static std::string read(wire::Reader& r) {
    const auto n = wire::get_count(r, 1);
    return wire::copy_of(r.take(n));
  }
};

template <class T>
struct serializer<std::vector<T>, std::enable_if_t<wire::Serializable<T>>> {
  static void write(wire::Writer& w, const std::vector<T>& v) {
    wire::put<std::uint64_t>(w, v.size());
    for (const auto& x : v)
      wire::put(w, x);
  }
  static std::vector<T> read(wire::Reader& r) {
    const auto n = wire::get_count(r, std::is_arithmetic_v<T> ? sizeof(T) : 0);
    std::vector<T> v;
    v.reserve(std::min<std::uint64_t>(n, 1 << 20));
    for (std::uint64_t i = 0; i < n; ++i)
      v.push_back(wire::get<T>(r));
    return v;
  }
};

template <class T, std::size_t N>
struct serializer<std::array<T, N>, std::enable_if_t<wire::Serializable<T>>> {
  static void write(wire::Writer& w, const std::array<T, N>& a) {
    for (const auto& x : a)
      wire::put(w, x);
  }
  static std::array<T, N> read(wire::Reader& r) {
    std::array<T, N> a;
    for (auto& x : a)
      x = wire::get<T>(r);
    return a;
  }
};

template <class A, class B>
struct serializer<std::pair<A, B>,
                  std::enable_if_t<wire::Serializable<A> && wire::Serializable<B>>> {
  static void write(wire::Writer& w, const std::pair<A, B>& p) {
    wire::put(w, p.first);
    wire::put(w, p.second);
  }
  static std::pair<A, B> read(wire::Reader& r) {
    A a = wire::get<A>(r);
    return {std::move(a), wire::get<B>(r)};
  }
};

template <class... Ts>
struct serializer<std::tuple<Ts...>, std::enable_if_t<(wire::Serializable<Ts> && ...)>> {
  static void write(wire::Writer& w, const std::tuple<Ts...>& t) {
    std::apply([&w](const auto&... x) { (wire::put(w, x), ...); }, t);
  }
  static std::tuple<Ts...> read(wire::Reader& r) {
    return std::tuple<Ts...>{wire::get<Ts>(r)...};  // braces: evaluated left to right
  }
};

template <class T>
struct serializer<std::optional<T>, std::enable_if_t<wire::Serializable<T>>> {
  static void write(wire::Writer& w, const std::optional<T>& o) {
    wire::put<bool>(w, o.has_value());
    if (o) wire::put(w, *o);
  }
  static std::optional<T> read(wire::Reader& r) {
    if (!wire::get<bool>(r)) return std::nullopt;
    return wire::get<T>(r);
  }
};

}  // namespace gilio::concurrent
