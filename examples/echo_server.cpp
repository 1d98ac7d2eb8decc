// examples/echo_server.cpp — the asyncio docs' TCP echo server, serving until killed.
//
// The Python program it mirrors (the docs' example, echoing for as long as the client talks —
// the benchmarks keep connections open — and without a print per message; given a certificate
// and its key, it serves TLS, as the benchmarks' TLS comparison has it do):
//
//     import asyncio, ssl, sys
//     async def handle_echo(reader, writer):
//         while data := await reader.read(65536):
//             writer.write(data)
//             await writer.drain()
//         writer.close()
//         await writer.wait_closed()
//     async def main(port, tls):
//         ctx = None
//         if tls:
//             ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
//             ctx.load_cert_chain(*tls)
//         server = await asyncio.start_server(handle_echo, '127.0.0.1', port, ssl=ctx)
//         print(f"Serving on 127.0.0.1:{server.sockets[0].getsockname()[1]}", flush=True)
//         async with server:
//             await server.serve_forever()
//     asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 8888, sys.argv[2:4]))
//
// Usage: echo_server [port [certfile keyfile]]   (port 0 picks a free one; the first line
// printed names it)
#include <fmt/core.h>

#include <cstdio>
#include <cstdlib>
#include <gilio/asyncio.hpp>

namespace asyncio = gilio::asyncio;

asyncio::Coro<> handle_echo(asyncio::StreamReader reader, asyncio::StreamWriter writer) {
  for (;;) {
    std::string data = co_await reader.read(65536);
    if (data.empty()) break;
    writer.write(data);
    co_await writer.drain();
  }
  writer.close();
  co_await writer.wait_closed();
}

asyncio::Coro<> main_coro(int port, asyncio::ServerOptions options) {
  auto server = co_await asyncio::start_server(handle_echo, "127.0.0.1", port, options);
  fmt::print("Serving on 127.0.0.1:{}\n", server.port());
  std::fflush(stdout);
  co_await server.serve_forever();
}

int main(int argc, char** argv) {
  const int port = argc > 1 ? std::atoi(argv[1]) : 8888;
  asyncio::ServerOptions options;
  if (argc > 3) {
    options.ssl = gilio::ssl::SSLContext(gilio::ssl::Protocol::TLS_SERVER);
    options.ssl->load_cert_chain(argv[2], argv[3]);
  }
  asyncio::run(main_coro(port, options));
}
