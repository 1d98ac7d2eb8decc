// tests/consumer/main.cpp — compiled against the *installed* gilio: the contract headers are
// there and gilio::gilio links. Prints "consumer ok" when the GIL works.
#include <gilio/gil.hpp>
#include <gilio/threading.hpp>
#include <gilio/time.hpp>

#include <cstdio>

namespace gil = gilio::gil;
namespace threading = gilio::threading;

int main() {
  int counter = 0;
  threading::Thread t([&] { ++counter; });
  t.start();
  t.join();
  gil::acquire();
  const bool ok = gil::held() && counter == 1;
  gil::release();
  std::puts(ok ? "consumer ok" : "consumer FAILED");
  return ok ? 0 : 1;
}
