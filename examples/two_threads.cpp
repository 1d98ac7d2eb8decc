// examples/two_threads.cpp — the README's first program: two CPU-bound threads under the GIL.
//
// The Python program it mirrors:
//
//     import threading
//     def spin():
//         for i in range(100_000_000): pass        # interpreter code: checks the eval breaker
//     a, b = threading.Thread(target=spin), threading.Thread(target=spin)
//     a.start(); b.start()
//     a.join(); b.join()                           # as slow as running both in turn
//
// Run it as `time build/examples/two_threads`, then with GILIO_GIL=off in front.
// clang-format off
#include <gilio/gil.hpp>
#include <gilio/threading.hpp>
namespace gil = gilio::gil;
namespace threading = gilio::threading;

void spin() { for (long i = 0; i < 100'000'000; ++i) gil::checkpoint(); }  // "interpreter code"

int main() {
  threading::Thread a(spin), b(spin);  // each runs holding the GIL, like a Python thread
  a.start(); b.start();
  a.join(); b.join();                  // as slow as running both in turn: one holder at a time
}
// clang-format on
