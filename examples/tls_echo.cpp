// examples/tls_echo.cpp — the asyncio docs' echo pair over TLS, in one program: a server with
// ssl= and a client that checks the server's certificate and name. The handshake, the
// encryption and the close_notify happen inside the streams; the handler and the client read
// and write plaintext exactly as the plain echo pair does.
//
// The Python program it mirrors (it prints the same three lines):
//
//     import asyncio, ssl, sys
//
//     async def handle_echo(reader, writer):
//         data = await reader.readline()
//         version = writer.get_extra_info("ssl_object").version()
//         print(f"server: {data.decode().strip()!r} from a {version} client")
//         writer.write(data)
//         await writer.drain()
//         writer.close()
//         await writer.wait_closed()
//
//     async def main(certfile, keyfile):
//         server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
//         server_ctx.load_cert_chain(certfile, keyfile)
//         server = await asyncio.start_server(handle_echo, "127.0.0.1", 0, ssl=server_ctx)
//         port = server.sockets[0].getsockname()[1]
//
//         client_ctx = ssl.create_default_context(cafile=certfile)
//         reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client_ctx,
//                                                        server_hostname="localhost")
//         writer.write(b"Hello over TLS!\n")
//         print(f"client: received {(await reader.readline()).decode().strip()!r}")
//         subject = dict(x[0] for x in writer.get_extra_info("peercert")["subject"])
//         print(f"client: the server's certificate is for {subject['commonName']}")
//         writer.close()
//         await writer.wait_closed()
//         server.close()
//         await server.wait_closed()
//
//     asyncio.run(main(sys.argv[1], sys.argv[2]))
//
// Usage: tls_echo CERTFILE KEYFILE — a certificate for "localhost" (self-signed will do: the
// client trusts it as its own authority) and its key; examples/tls_echo.sh makes a pair with
// the openssl command and runs this.
#include <fmt/core.h>

#include <gilio/asyncio.hpp>
#include <gilio/ssl.hpp>
#include <string>

namespace asyncio = gilio::asyncio;
namespace ssl = gilio::ssl;

namespace {

std::string stripped(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r'))
    s.pop_back();
  return s;
}

// "CN=localhost,O=..." → "localhost"
std::string common_name(const std::string& subject) {
  const auto at = subject.find("CN=");
  if (at == std::string::npos) return "?";
  return subject.substr(at + 3, subject.find(',', at) - (at + 3));
}

asyncio::Coro<> handle_echo(asyncio::StreamReader reader, asyncio::StreamWriter writer) {
  std::string data = co_await reader.readline();
  const std::string version = writer.ssl_object()->version();
  fmt::print("server: '{}' from a {} client\n", stripped(data), version);
  writer.write(data);
  co_await writer.drain();
  writer.close();
  co_await writer.wait_closed();
}

asyncio::Coro<> amain(std::string certfile, std::string keyfile) {
  ssl::SSLContext server_ctx(ssl::Protocol::TLS_SERVER);
  server_ctx.load_cert_chain(certfile, keyfile);
  asyncio::ServerOptions server_options;
  server_options.ssl = server_ctx;
  auto server = co_await asyncio::start_server(handle_echo, "127.0.0.1", 0, server_options);
  const int port = server.port();

  asyncio::ConnectionOptions client_options;
  client_options.ssl = ssl::SSLContext::create_default_context(ssl::Purpose::SERVER_AUTH, certfile);
  client_options.server_hostname = "localhost";
  auto [reader, writer] = co_await asyncio::open_connection("127.0.0.1", port, client_options);
  writer.write(std::string_view("Hello over TLS!\n"));
  const std::string echoed = co_await reader.readline();
  fmt::print("client: received '{}'\n", stripped(echoed));
  const std::string subject = writer.ssl_object()->getpeercert()->subject;
  fmt::print("client: the server's certificate is for {}\n", common_name(subject));
  writer.close();
  co_await writer.wait_closed();
  server.close();
  co_await server.wait_closed();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    fmt::print(stderr, "usage: {} CERTFILE KEYFILE\n", argv[0]);
    return 2;
  }
  asyncio::run(amain(argv[1], argv[2]));
}
