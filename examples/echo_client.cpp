// examples/echo_client.cpp — the asyncio docs' TCP echo client.
//
// The Python program it mirrors:
//
//     import asyncio, sys
//     async def tcp_echo_client(message, port):
//         reader, writer = await asyncio.open_connection('127.0.0.1', port)
//         print(f'Send: {message!r}')
//         writer.write(message.encode())
//         await writer.drain()
//         data = await reader.read(100)
//         print(f'Received: {data.decode()!r}')
//         print('Close the connection')
//         writer.close()
//         await writer.wait_closed()
//     asyncio.run(tcp_echo_client('Hello World!', int(sys.argv[1]) if len(sys.argv) > 1 else 8888))
//
// Usage: echo_client [port]   (talks to examples/echo_server)
#include <fmt/core.h>

#include <cstdlib>
#include <gilio/asyncio.hpp>
#include <string>

namespace asyncio = gilio::asyncio;

asyncio::Coro<> tcp_echo_client(std::string message, int port) {
  auto [reader, writer] = co_await asyncio::open_connection("127.0.0.1", port);
  fmt::print("Send: '{}'\n", message);
  writer.write(message);
  co_await writer.drain();
  std::string data = co_await reader.read(100);
  fmt::print("Received: '{}'\n", data);
  fmt::print("Close the connection\n");
  writer.close();
  co_await writer.wait_closed();
}

int main(int argc, char** argv) {
  const int port = argc > 1 ? std::atoi(argv[1]) : 8888;
  asyncio::run(tcp_echo_client("Hello World!", port));
}
