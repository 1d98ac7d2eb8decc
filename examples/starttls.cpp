// examples/starttls.cpp — STARTTLS, as SMTP and IMAP do it: the conversation begins in plain
// text, and at the client's "STARTTLS" both ends upgrade the same connection to TLS in place.
// The server is a protocol, upgraded with loop.start_tls (asyncio.start_tls here: the reading
// task stops, the handshake runs over the connection, the protocol goes on with plaintext); the
// client is a pair of streams, upgraded with StreamWriter::start_tls (3.11's writer.start_tls).
//
// One lesson hides in the order of the lines. asyncio's SSL transport hands the protocol the
// first decrypted bytes as soon as the handshake ends — before start_tls has returned the new
// transport to write the answer on — so a client that spoke first after its handshake could be
// answered by a protocol with no transport yet. Here, as in SMTP's greeting, the server speaks
// first ("220 secure"), and the client waits for it. (gilio's start_tls hands the transport over
// before the reading task delivers anything, but the program is written for both.)
//
// The Python program it mirrors (it prints the same five lines):
//
//     import asyncio, ssl, sys
//
//     class Greeter(asyncio.Protocol):
//         def __init__(self, context):
//             self.context = context
//             self.secure = False
//
//         def connection_made(self, transport):
//             self.transport = transport
//             transport.write(b"220 ready\n")
//
//         def data_received(self, data):
//             if not self.secure:
//                 if data == b"STARTTLS\n":
//                     self.transport.write(b"220 go ahead\n")
//                     asyncio.create_task(self.upgrade())
//                 return
//             version = self.transport.get_extra_info("ssl_object").version()
//             print(f"server: {data.decode().strip()!r} over {version}")
//             self.transport.write(b"250 ok\n")
//
//         async def upgrade(self):
//             loop = asyncio.get_running_loop()
//             self.transport = await loop.start_tls(self.transport, self, self.context,
//                                                   server_side=True)
//             self.secure = True
//             self.transport.write(b"220 secure\n")
//
//     async def main(certfile, keyfile):
//         server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
//         server_ctx.load_cert_chain(certfile, keyfile)
//         loop = asyncio.get_running_loop()
//         server = await loop.create_server(lambda: Greeter(server_ctx), "127.0.0.1", 0)
//         port = server.sockets[0].getsockname()[1]
//
//         reader, writer = await asyncio.open_connection("127.0.0.1", port)
//         print(f"client: {(await reader.readline()).decode().strip()}")
//         writer.write(b"STARTTLS\n")
//         print(f"client: {(await reader.readline()).decode().strip()}")
//         client_ctx = ssl.create_default_context(cafile=certfile)
//         await writer.start_tls(client_ctx, server_hostname="localhost")
//         print(f"client: {(await reader.readline()).decode().strip()}")
//         writer.write(b"MAIL FROM:<me@example.com>\n")
//         answer = (await reader.readline()).decode().strip()
//         print(f"client: {answer} (over {writer.get_extra_info('ssl_object').version()})")
//         writer.close()
//         await writer.wait_closed()
//         server.close()
//         await server.wait_closed()
//
//     asyncio.run(main(sys.argv[1], sys.argv[2]))
//
// Usage: starttls CERTFILE KEYFILE — a certificate for "localhost" and its key;
// examples/tls_echo.sh makes a pair with the openssl command and runs this.
#include <fmt/core.h>

#include <gilio/asyncio.hpp>
#include <gilio/ssl.hpp>
#include <memory>
#include <string>

namespace asyncio = gilio::asyncio;
namespace ssl = gilio::ssl;

namespace {

std::string stripped(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r'))
    s.pop_back();
  return s;
}

class Greeter : public asyncio::Protocol, public std::enable_shared_from_this<Greeter> {
 public:
  explicit Greeter(ssl::SSLContext context) : context_(std::move(context)) {}

  void connection_made(asyncio::Transport& transport) override {
    transport_ = transport;
    transport.write(std::string_view("220 ready\n"));
  }

  void data_received(std::string data) override {
    if (!secure_) {
      if (data == "STARTTLS\n") {
        transport_.write(std::string_view("220 go ahead\n"));
        asyncio::create_task(upgrade());
      }
      return;
    }
    const std::string version = transport_.ssl_object()->version();
    fmt::print("server: '{}' over {}\n", stripped(data), version);
    transport_.write(std::string_view("250 ok\n"));
  }

 private:
  asyncio::Coro<> upgrade() {
    asyncio::StartTlsOptions options;
    options.server_side = true;
    std::shared_ptr<Greeter> self = shared_from_this();  // alive until the upgrade is done
    transport_ = co_await asyncio::start_tls(transport_, self, context_, options);
    secure_ = true;
    transport_.write(std::string_view("220 secure\n"));
  }

  ssl::SSLContext context_;
  asyncio::Transport transport_;
  bool secure_ = false;
};

asyncio::Coro<> amain(std::string certfile, std::string keyfile) {
  ssl::SSLContext server_ctx(ssl::Protocol::TLS_SERVER);
  server_ctx.load_cert_chain(certfile, keyfile);
  asyncio::ProtocolFactory greeter = [server_ctx] { return std::make_shared<Greeter>(server_ctx); };
  auto server = co_await asyncio::create_server(greeter, "127.0.0.1", 0);
  const int port = server.port();

  auto [reader, writer] = co_await asyncio::open_connection("127.0.0.1", port);
  fmt::print("client: {}\n", stripped(co_await reader.readline()));
  writer.write(std::string_view("STARTTLS\n"));
  fmt::print("client: {}\n", stripped(co_await reader.readline()));
  auto client_ctx = ssl::SSLContext::create_default_context(ssl::Purpose::SERVER_AUTH, certfile);
  co_await writer.start_tls(client_ctx, "localhost");
  fmt::print("client: {}\n", stripped(co_await reader.readline()));
  writer.write(std::string_view("MAIL FROM:<me@example.com>\n"));
  const std::string answer = stripped(co_await reader.readline());
  fmt::print("client: {} (over {})\n", answer, writer.ssl_object()->version());
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
