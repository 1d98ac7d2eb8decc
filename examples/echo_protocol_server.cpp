// examples/echo_protocol_server.cpp — the asyncio docs' protocol echo server (EchoServerProtocol,
// under "TCP Echo Server" in "Transports and Protocols"), serving until killed.
//
// The Python program it mirrors (the docs' example, echoing for as long as the client talks
// rather than closing after one message — the benchmarks keep connections open — and without a
// print per message):
//
//     import asyncio, sys
//     class EchoServerProtocol(asyncio.Protocol):
//         def connection_made(self, transport):
//             self.transport = transport
//         def data_received(self, data):
//             self.transport.write(data)
//     async def main(port):
//         loop = asyncio.get_running_loop()
//         server = await loop.create_server(EchoServerProtocol, '127.0.0.1', port)
//         print(f"Serving on 127.0.0.1:{server.sockets[0].getsockname()[1]}", flush=True)
//         async with server:
//             await server.serve_forever()
//     asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 8888))
//
// No coroutine per connection is written here: the transport calls data_received as bytes
// arrive. Compare examples/echo_server.cpp, the same server with streams.
//
// Usage: echo_protocol_server [port]   (port 0 picks a free one; the first line printed names it)
#include <fmt/core.h>

#include <cstdio>
#include <cstdlib>
#include <gilio/asyncio.hpp>
#include <memory>
#include <string>

namespace asyncio = gilio::asyncio;

class EchoServerProtocol : public asyncio::Protocol {
 public:
  void connection_made(asyncio::Transport& transport) override { transport_ = transport; }
  void data_received(std::string data) override { transport_.write(std::move(data)); }

 private:
  asyncio::Transport transport_;
};

asyncio::Coro<> main_coro(int port) {
  asyncio::ProtocolFactory factory = [] { return std::make_shared<EchoServerProtocol>(); };
  auto server = co_await asyncio::create_server(factory, "127.0.0.1", port);
  fmt::print("Serving on 127.0.0.1:{}\n", server.port());
  std::fflush(stdout);
  co_await server.serve_forever();
}

int main(int argc, char** argv) {
  const int port = argc > 1 ? std::atoi(argv[1]) : 8888;
  asyncio::run(main_coro(port));
}
