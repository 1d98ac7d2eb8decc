// tests/test_tls.cpp — gilio/ssl.hpp and TLS streams (ssl= on open_connection and start_server,
// StreamWriter::start_tls) over real TCP on loopback, after Lib/test/test_asyncio/test_ssl.py
// and test_sslproto.py. The certificates are made here, at the start, with OpenSSL: an
// authority, a server certificate for localhost / 127.0.0.1 / ::1 and a client certificate it
// signed, and a second authority nobody trusts. CPython's ssl module is a peer in both
// directions: its client talks to a gilio server, and gilio's client to its server.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "asyncio_support.hpp"
#include "gilio/asyncio.hpp"
#include "gilio/ssl.hpp"

namespace asyncio = gilio::asyncio;
namespace ssl = gilio::ssl;
using asyncio::Coro;
using asyncio::StreamReader;
using asyncio::StreamWriter;
using gilio::testing::expect_await_throws;
using gilio::testing::run_test;

namespace {

// ---- the certificates ----

struct Pki {
  std::string dir;
  std::string ca;           // the authority's certificate (PEM)
  std::string server;       // the server's certificate, then its key (one PEM file)
  std::string client;       // the client's certificate, then its key
  std::string client_cert;  // ... the same, apart
  std::string client_key;
  std::string stranger;     // a self-signed authority's certificate and key, trusted by nobody
  std::string server_cert;  // the server's certificate alone
  std::string server_key_sealed;  // its key, encrypted with the password "sesame"
};

void add_extension(X509* cert, X509V3_CTX* ctx, int nid, const char* value) {
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, ctx, nid, value);
  ASSERT_NE(ext, nullptr) << value;
  X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
}

// A certificate for `key`, named `cn`, signed by `issuer` (itself when null).
X509* make_certificate(EVP_PKEY* key, const char* cn, X509* issuer, EVP_PKEY* issuer_key,
                       bool authority, const char* alt_names) {
  static long serial = 1;
  X509* x = X509_new();
  X509_set_version(x, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x), serial++);
  X509_gmtime_adj(X509_getm_notBefore(x), -3600);
  X509_gmtime_adj(X509_getm_notAfter(x), 30L * 24 * 3600);
  X509_set_pubkey(x, key);
  X509_NAME* name = X509_get_subject_name(x);
  X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("gilio tests"), -1, -1, 0);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(cn),
                             -1, -1, 0);
  X509_set_issuer_name(x, issuer != nullptr ? X509_get_subject_name(issuer) : name);
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer != nullptr ? issuer : x, x, nullptr, nullptr, 0);
  add_extension(x, &ctx, NID_basic_constraints, authority ? "critical,CA:TRUE" : "CA:FALSE");
  add_extension(x, &ctx, NID_subject_key_identifier, "hash");
  if (authority) add_extension(x, &ctx, NID_key_usage, "critical,keyCertSign,cRLSign");
  if (issuer != nullptr) add_extension(x, &ctx, NID_authority_key_identifier, "keyid:always");
  if (alt_names != nullptr) add_extension(x, &ctx, NID_subject_alt_name, alt_names);
  X509_sign(x, issuer_key != nullptr ? issuer_key : key, EVP_sha256());
  return x;
}

void write_pem(const std::string& path, X509* cert, EVP_PKEY* key) {
  FILE* f = std::fopen(path.c_str(), "w");
  ASSERT_NE(f, nullptr) << path;
  if (cert != nullptr) PEM_write_X509(f, cert);
  if (key != nullptr) PEM_write_PrivateKey(f, key, nullptr, nullptr, 0, nullptr, nullptr);
  std::fclose(f);
}

Pki make_pki() {
  Pki p;
  char tmpl[] = "/tmp/gilio-tls-XXXXXX";
  p.dir = ::mkdtemp(tmpl);
  EVP_PKEY* ca_key = EVP_EC_gen("P-256");
  X509* ca = make_certificate(ca_key, "gilio test authority", nullptr, nullptr, true, nullptr);
  EVP_PKEY* server_key = EVP_EC_gen("P-256");
  X509* server = make_certificate(server_key, "localhost", ca, ca_key, false,
                                  "DNS:localhost,IP:127.0.0.1,IP:::1");
  EVP_PKEY* client_key = EVP_EC_gen("P-256");
  X509* client = make_certificate(client_key, "gilio client", ca, ca_key, false, nullptr);
  EVP_PKEY* stranger_key = EVP_EC_gen("P-256");
  X509* stranger = make_certificate(stranger_key, "localhost", nullptr, nullptr, false,
                                    "DNS:localhost,IP:127.0.0.1");
  p.ca = p.dir + "/ca.pem";
  p.server = p.dir + "/server.pem";
  p.client = p.dir + "/client.pem";
  p.client_cert = p.dir + "/client-cert.pem";
  p.client_key = p.dir + "/client-key.pem";
  p.stranger = p.dir + "/stranger.pem";
  write_pem(p.ca, ca, nullptr);
  write_pem(p.server, server, server_key);
  write_pem(p.client, client, client_key);
  write_pem(p.client_cert, client, nullptr);
  write_pem(p.client_key, nullptr, client_key);
  write_pem(p.stranger, stranger, stranger_key);
  p.server_cert = p.dir + "/server-cert.pem";
  p.server_key_sealed = p.dir + "/server-key-sealed.pem";
  write_pem(p.server_cert, server, nullptr);
  FILE* sealed = std::fopen(p.server_key_sealed.c_str(), "w");
  PEM_write_PrivateKey(sealed, server_key, EVP_aes_128_cbc(), nullptr, 0, nullptr,
                       const_cast<char*>("sesame"));
  std::fclose(sealed);
  for (X509* x : {ca, server, client, stranger})
    X509_free(x);
  for (EVP_PKEY* k : {ca_key, server_key, client_key, stranger_key})
    EVP_PKEY_free(k);
  return p;
}

// Made once per process (each test is a process of its own under ctest); removed at its exit.
const Pki& pki() {
  static const struct Holder {
    Pki p = make_pki();
    ~Holder() { std::filesystem::remove_all(p.dir); }
  } holder;
  return holder.p;
}

ssl::SSLContext server_context(const std::string& cert = pki().server) {
  ssl::SSLContext c(ssl::Protocol::TLS_SERVER);
  c.load_cert_chain(cert);
  return c;
}

ssl::SSLContext client_context() {
  return ssl::SSLContext::create_default_context(ssl::Purpose::SERVER_AUTH, pki().ca);
}

asyncio::ServerOptions tls_server(ssl::SSLContext c) {
  asyncio::ServerOptions o;
  o.ssl = std::move(c);
  return o;
}

asyncio::ConnectionOptions tls_client(ssl::SSLContext c, std::string hostname = "") {
  asyncio::ConnectionOptions o;
  o.ssl = std::move(c);
  if (!hostname.empty()) o.server_hostname = std::move(hostname);
  return o;
}

Coro<void> echo_lines(StreamReader r, StreamWriter w) {
  for (;;) {
    std::string line = co_await r.readline();
    if (line.empty()) break;
    w.write(line);
    co_await w.drain();
  }
  w.close();
}

// A TLS echo server (echo_lines) on a free port of 127.0.0.1.
Coro<asyncio::Server> tls_echo_server(ssl::SSLContext context) {
  asyncio::ClientConnected handler = echo_lines;
  auto options = tls_server(std::move(context));
  co_return co_await asyncio::start_server(handler, "127.0.0.1", 0, options);
}

// The end of a test: the client's writer closed, then the server, waiting for its handlers.
Coro<void> close_both(StreamWriter w, asyncio::Server server) {
  w.close();
  server.close();
  co_await server.wait_closed();
}

std::string patterned(std::size_t n) {
  std::string s(n, '\0');
  for (std::size_t i = 0; i < n; ++i)
    s[i] = static_cast<char>('a' + (i * 7 + i / 16384) % 26);
  return s;
}

bool contains(const std::vector<std::string>& v, const std::string& x) {
  return std::find(v.begin(), v.end(), x) != v.end();
}

}  // namespace

TEST(TlsStreams, EchoOverTlsWithTheServersCertificateVerified) {
  run_test([]() -> Coro<void> {
    std::optional<ssl::SSLObject> server_seen;
    bool server_had_client_cert = true;
    asyncio::ClientConnected handler = [&](StreamReader r, StreamWriter w) -> Coro<void> {
      server_seen = w.ssl_object();
      if (server_seen) server_had_client_cert = server_seen->getpeercert().has_value();
      co_await echo_lines(std::move(r), std::move(w));
    };
    auto options = tls_server(server_context());
    auto server = co_await asyncio::start_server(handler, "127.0.0.1", 0, options);
    auto client = tls_client(client_context());  // checks the name "127.0.0.1": an IP SAN
    auto [r, w] = co_await asyncio::open_connection("127.0.0.1", server.port(), client);
    const std::vector<std::string> lines{"one\n", "two\n", "three\n"};
    for (const std::string& line : lines) {
      w.write(std::string_view(line));
      EXPECT_EQ(co_await r.readline(), line);
    }
    const std::optional<ssl::SSLObject> tls = w.ssl_object();
    EXPECT_TRUE(tls.has_value());
    if (tls) {
      EXPECT_EQ(tls->version(), "TLSv1.3");
      EXPECT_FALSE(tls->cipher().empty());
      EXPECT_FALSE(tls->server_side());
      EXPECT_EQ(tls->server_hostname(), "127.0.0.1");
      const std::optional<ssl::Certificate> cert = tls->getpeercert();
      EXPECT_TRUE(cert.has_value());
      if (cert) {
        EXPECT_NE(cert->subject.find("CN=localhost"), std::string::npos) << cert->subject;
        EXPECT_NE(cert->issuer.find("CN=gilio test authority"), std::string::npos);
        EXPECT_TRUE(contains(cert->subject_alt_names, "DNS:localhost"));
        EXPECT_TRUE(contains(cert->subject_alt_names, "IP Address:127.0.0.1"));
        EXPECT_NE(cert->not_after.find("GMT"), std::string::npos) << cert->not_after;
        EXPECT_FALSE(cert->serial_number.empty());
      }
    }
    EXPECT_FALSE(w.can_write_eof());
    EXPECT_TRUE(server_seen.has_value());
    EXPECT_TRUE(server_seen && server_seen->server_side());
    EXPECT_FALSE(server_had_client_cert);
    w.close();
    co_await w.wait_closed();
    server.close();
    co_await server.wait_closed();
  }());
}

TEST(TlsStreams, AHostNameIsCheckedAndSentAsSni) {
  run_test([]() -> Coro<void> {
    auto server = co_await tls_echo_server(server_context());
    auto client = tls_client(client_context(), "localhost");
    auto [r, w] = co_await asyncio::open_connection("127.0.0.1", server.port(), client);
    w.write(std::string_view("named\n"));
    EXPECT_EQ(co_await r.readline(), "named\n");
    EXPECT_EQ(w.ssl_object()->server_hostname(), "localhost");
    co_await close_both(w, server);
  }());
}

TEST(TlsStreams, MegabytesBothWaysArriveWholeAndInOrder) {
  run_test([]() -> Coro<void> {
    asyncio::ClientConnected handler = [](StreamReader r, StreamWriter w) -> Coro<void> {
      for (;;) {  // echo in whatever pieces the records decrypt to
        std::string piece = co_await r.read(100000);
        if (piece.empty()) break;
        w.write(std::move(piece));
        co_await w.drain();
      }
      w.close();
    };
    auto options = tls_server(server_context());
    auto server = co_await asyncio::start_server(handler, "127.0.0.1", 0, options);
    auto client = tls_client(client_context());
    auto [r, w] = co_await asyncio::open_connection("127.0.0.1", server.port(), client);
    const std::string data = patterned(6 * 1024 * 1024 + 12345);
    auto reading = asyncio::create_task(r.readexactly(data.size()));
    for (std::size_t at = 0; at < data.size(); at += 70000) {
      w.write(std::string_view(data).substr(at, 70000));
      co_await w.drain();  // backpressure counts the encrypted bytes
    }
    const std::string back = co_await reading;
    EXPECT_EQ(back.size(), data.size());
    EXPECT_TRUE(back == data) << "the echoed bytes differ";
    w.close();
    EXPECT_EQ(co_await r.read(), "");  // the server's close_notify: EOF
    server.close();
    co_await server.wait_closed();
  }());
}

TEST(TlsStreams, AnAuthorityNobodyTrustsFailsVerificationAndTheHandlerNeverRuns) {
  run_test([]() -> Coro<void> {
    int handled = 0;
    asyncio::ClientConnected handler = [&](StreamReader, StreamWriter) -> Coro<void> {
      ++handled;
      co_return;
    };
    auto options = tls_server(server_context(pki().stranger));
    auto server = co_await asyncio::start_server(handler, "127.0.0.1", 0, options);
    auto client = tls_client(client_context());
    try {
      co_await asyncio::open_connection("127.0.0.1", server.port(), client);
      ADD_FAILURE() << "a certificate from an unknown authority was accepted";
    } catch (const ssl::SSLCertVerificationError& e) {
      EXPECT_EQ(e.verify_code(), 18) << e.what();  // X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT
      EXPECT_NE(e.verify_message().find("self-signed"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("127.0.0.1:"), std::string::npos) << e.what();
    }
    server.close();
    co_await server.wait_closed();  // the connection's task: its handshake failed
    EXPECT_EQ(handled, 0);
  }());
}

TEST(TlsStreams, ACertificateForAnotherNameFailsVerification) {
  run_test([]() -> Coro<void> {
    auto server = co_await tls_echo_server(server_context());
    auto client = tls_client(client_context(), "example.com");
    try {
      co_await asyncio::open_connection("127.0.0.1", server.port(), client);
      ADD_FAILURE() << "a certificate for localhost was taken for example.com";
    } catch (const ssl::SSLCertVerificationError& e) {
      EXPECT_EQ(e.verify_code(), 62) << e.what();  // X509_V_ERR_HOSTNAME_MISMATCH
      EXPECT_NE(e.verify_message().find("'example.com'"), std::string::npos) << e.what();
    }
    server.close();
    co_await server.wait_closed();
  }());
}

TEST(TlsStreams, WithVerificationOffAnyCertificateIsTaken) {
  run_test([]() -> Coro<void> {
    auto server = co_await tls_echo_server(server_context(pki().stranger));
    ssl::SSLContext trusting(ssl::Protocol::TLS_CLIENT);
    trusting.set_check_hostname(false);
    trusting.set_verify_mode(ssl::VerifyMode::CERT_NONE);
    auto client = tls_client(trusting);
    auto [r, w] = co_await asyncio::open_connection("127.0.0.1", server.port(), client);
    w.write(std::string_view("anyway\n"));
    EXPECT_EQ(co_await r.readline(), "anyway\n");
    co_await close_both(w, server);
  }());
}

TEST(TlsStreams, MutualTlsChecksTheClientsCertificate) {
  run_test([]() -> Coro<void> {
    std::string client_subject;
    int handled = 0;
    asyncio::ClientConnected handler = [&](StreamReader r, StreamWriter w) -> Coro<void> {
      ++handled;
      if (auto cert = w.ssl_object()->getpeercert()) client_subject = cert->subject;
      co_await echo_lines(std::move(r), std::move(w));
    };
    ssl::SSLContext strict = server_context();
    strict.load_verify_locations(pki().ca);
    strict.set_verify_mode(ssl::VerifyMode::CERT_REQUIRED);
    auto options = tls_server(strict);
    auto server = co_await asyncio::start_server(handler, "127.0.0.1", 0, options);

    ssl::SSLContext with_cert = client_context();
    with_cert.load_cert_chain(pki().client_cert, pki().client_key);
    auto client = tls_client(with_cert);
    auto [r, w] = co_await asyncio::open_connection("127.0.0.1", server.port(), client);
    w.write(std::string_view("me\n"));
    EXPECT_EQ(co_await r.readline(), "me\n");
    EXPECT_NE(client_subject.find("CN=gilio client"), std::string::npos) << client_subject;
    w.close();

    // Without a certificate: TLS 1.3 finishes the client's handshake before the server has
    // looked, so the server's refusal (an alert) fails the client's first read.
    auto anonymous = tls_client(client_context());
    auto [r2, w2] = co_await asyncio::open_connection("127.0.0.1", server.port(), anonymous);
    w2.write(std::string_view("me too\n"));
    co_await expect_await_throws<ssl::SSLError>(r2.readline(), "the server's alert was not raised",
                                                "certificate required");
    w2.close();
    server.close();
    co_await server.wait_closed();
    EXPECT_EQ(handled, 1);
  }());
}

TEST(TlsStreams, ClosingSendsCloseNotifyWhichThePeerReadsAsEof) {
  run_test([]() -> Coro<void> {
    asyncio::Future<std::string> server_read;
    asyncio::ClientConnected handler = [&](StreamReader r, StreamWriter w) -> Coro<void> {
      w.write(std::string_view("bye"));
      std::string all = co_await r.read();  // to the client's close_notify
      EXPECT_TRUE(r.at_eof());
      server_read.set_result(std::move(all));
      w.close();
    };
    auto options = tls_server(server_context());
    auto server = co_await asyncio::start_server(handler, "127.0.0.1", 0, options);
    auto client = tls_client(client_context());
    auto [r, w] = co_await asyncio::open_connection("127.0.0.1", server.port(), client);
    EXPECT_EQ(co_await r.readexactly(3), "bye");
    w.write(std::string_view("last words"));
    w.close();
    EXPECT_EQ(co_await server_read, "last words");
    EXPECT_EQ(co_await r.read(), "");
    EXPECT_TRUE(r.at_eof());
    co_await w.wait_closed();
    server.close();
    co_await server.wait_closed();
  }());
}

TEST(TlsStreams, AHandshakeThatTakesTooLongIsAborted) {
  run_test([]() -> Coro<void> {
    asyncio::ClientConnected silent = [](StreamReader r, StreamWriter w) -> Coro<void> {
      co_await r.read();  // reads the ClientHello and never answers
      w.close();
    };
    auto server = co_await asyncio::start_server(silent, "127.0.0.1", 0);
    auto client = tls_client(client_context());
    client.ssl_handshake_timeout = 0.2;
    const double start = asyncio::get_running_loop().time();
    co_await expect_await_throws<asyncio::ConnectionAbortedError>(
        asyncio::open_connection("127.0.0.1", server.port(), client), "no timeout",
        "taking longer than 0.2 seconds");
    EXPECT_GE(asyncio::get_running_loop().time() - start, 0.19);
    server.close();
    server.close_clients();
    co_await server.wait_closed();
  }());
}

// Cancelling open_connection during its handshake aborts the connection (the server sees it
// end) and raises CancelledError; nothing is left behind for LeakSanitizer.
TEST(TlsStreams, CancellingAHandshakeAbortsTheConnection) {
  run_test([]() -> Coro<void> {
    asyncio::Event hello_came;
    asyncio::Event server_saw_end;
    asyncio::ClientConnected silent = [&](StreamReader r, StreamWriter w) -> Coro<void> {
      co_await r.read(1);  // the ClientHello has begun: the handshake is under way
      hello_came.set();
      co_await r.read();  // never answered; read to the end
      server_saw_end.set();
      w.close();
    };
    auto server = co_await asyncio::start_server(silent, "127.0.0.1", 0);
    auto client = tls_client(client_context());
    auto connecting =
        asyncio::create_task(asyncio::open_connection("127.0.0.1", server.port(), client));
    co_await hello_came.wait();
    EXPECT_FALSE(connecting.done());
    connecting.cancel();
    co_await expect_await_throws<asyncio::CancelledError>(connecting, "not cancelled");
    co_await server_saw_end.wait();
    server.close();
    co_await server.wait_closed();
  }());
}

TEST(TlsStreams, ATlsServersHandshakeTimesOutForAClientThatSaysNothing) {
  run_test([]() -> Coro<void> {
    int handled = 0;
    asyncio::ClientConnected handler = [&](StreamReader, StreamWriter) -> Coro<void> {
      ++handled;
      co_return;
    };
    auto options = tls_server(server_context());
    options.ssl_handshake_timeout = 0.2;
    auto server = co_await asyncio::start_server(handler, "127.0.0.1", 0, options);
    auto [r, w] = co_await asyncio::open_connection("127.0.0.1", server.port());
    EXPECT_EQ(co_await r.read(), "");  // the server gives up and aborts the connection
    EXPECT_EQ(handled, 0);
    co_await close_both(w, server);
  }());
}

TEST(TlsStreams, APlainTextPeerIsAnSslErrorAndOneThatHangsUpIsAReset) {
  run_test([]() -> Coro<void> {
    asyncio::ClientConnected http = [](StreamReader r, StreamWriter w) -> Coro<void> {
      co_await r.read(1);
      w.write(std::string_view("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"));
      co_await r.read();
      w.close();
    };
    auto server = co_await asyncio::start_server(http, "127.0.0.1", 0);
    auto client = tls_client(client_context());
    co_await expect_await_throws<ssl::SSLError>(
        asyncio::open_connection("127.0.0.1", server.port(), client), "plain text was taken");

    asyncio::ClientConnected hang_up = [](StreamReader r, StreamWriter w) -> Coro<void> {
      co_await r.read(1);
      w.close();
    };
    auto rude = co_await asyncio::start_server(hang_up, "127.0.0.1", 0);
    co_await expect_await_throws<asyncio::ConnectionResetError>(
        asyncio::open_connection("127.0.0.1", rude.port(), client), "no reset");
    for (auto* s : {&server, &rude})
      s->close();
    co_await server.wait_closed();
    co_await rude.wait_closed();
  }());
}

TEST(TlsStreams, StartTlsUpgradesAPlainConnectionOnBothSides) {
  run_test([]() -> Coro<void> {
    std::optional<ssl::SSLObject> server_tls;
    asyncio::ClientConnected handler = [&](StreamReader r, StreamWriter w) -> Coro<void> {
      EXPECT_EQ(co_await r.readline(), "STARTTLS\n");
      EXPECT_FALSE(w.ssl_object().has_value());
      w.write(std::string_view("GO AHEAD\n"));
      co_await w.start_tls(server_context());  // a server's connection: the server side
      server_tls = w.ssl_object();
      co_await echo_lines(std::move(r), std::move(w));
    };
    auto server = co_await asyncio::start_server(handler, "127.0.0.1", 0);
    auto [r, w] = co_await asyncio::open_connection("127.0.0.1", server.port());
    w.write(std::string_view("STARTTLS\n"));
    EXPECT_EQ(co_await r.readline(), "GO AHEAD\n");
    co_await w.start_tls(client_context(), "localhost");
    EXPECT_TRUE(w.ssl_object().has_value());
    w.write(std::string_view("secret\n"));
    EXPECT_EQ(co_await r.readline(), "secret\n");
    EXPECT_TRUE(server_tls.has_value() && server_tls->server_side());
    co_await expect_await_throws<std::runtime_error>(w.start_tls(client_context(), "localhost"),
                                                     "TLS twice", "already uses TLS");
    co_await close_both(w, server);
  }());
}

TEST(TlsStreams, WriteEofIsRefusedOverTls) {
  run_test([]() -> Coro<void> {
    auto server = co_await tls_echo_server(server_context());
    auto client = tls_client(client_context());
    auto [r, w] = co_await asyncio::open_connection("127.0.0.1", server.port(), client);
    EXPECT_FALSE(w.can_write_eof());
    try {
      w.write_eof();
      ADD_FAILURE() << "write_eof over TLS";
    } catch (const std::runtime_error& e) {
      EXPECT_NE(std::string(e.what()).find("half-close"), std::string::npos) << e.what();
    }
    co_await close_both(w, server);
  }());
}

TEST(TlsStreams, SendfileOverTlsSendsTheFileEncrypted) {
  run_test([]() -> Coro<void> {
    const std::string path = pki().dir + "/payload.bin";
    const std::string data = patterned(700 * 1024 + 3);
    { std::ofstream(path, std::ios::binary) << data; }
    asyncio::Future<std::string> received;
    asyncio::ClientConnected handler = [&](StreamReader r, StreamWriter w) -> Coro<void> {
      received.set_result(co_await r.read());
      w.close();
    };
    auto options = tls_server(server_context());
    auto server = co_await asyncio::start_server(handler, "127.0.0.1", 0, options);
    auto client = tls_client(client_context());
    auto [r, w] = co_await asyncio::open_connection("127.0.0.1", server.port(), client);
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    EXPECT_GE(fd, 0);
    const std::optional<std::size_t> count = 500000;
    const std::size_t sent = co_await w.sendfile(fd, 100, count);
    EXPECT_EQ(sent, 500000u);
    EXPECT_EQ(::lseek(fd, 0, SEEK_CUR), 500100);
    w.close();
    const std::string got = co_await received;
    EXPECT_TRUE(got == data.substr(100, 500000)) << got.size();
    ::close(fd);
    server.close();
    co_await server.wait_closed();
  }());
}

TEST(TlsStreams, AlpnPicksTheServersFirstChoiceAmongTheClients) {
  run_test([]() -> Coro<void> {
    ssl::SSLContext sc = server_context();
    sc.set_alpn_protocols({"h2", "http/1.1"});
    auto server = co_await tls_echo_server(sc);
    ssl::SSLContext both = client_context();
    both.set_alpn_protocols({"http/1.1", "h2"});
    auto client = tls_client(both);
    auto [r, w] = co_await asyncio::open_connection("127.0.0.1", server.port(), client);
    EXPECT_EQ(w.ssl_object()->selected_alpn_protocol(), std::optional<std::string>("h2"));
    w.close();
    ssl::SSLContext other = client_context();
    other.set_alpn_protocols({"spdy/1"});
    auto client2 = tls_client(other);
    auto [r2, w2] = co_await asyncio::open_connection("127.0.0.1", server.port(), client2);
    EXPECT_FALSE(w2.ssl_object()->selected_alpn_protocol().has_value());
    co_await close_both(w2, server);
  }());
}

TEST(TlsStreams, AReadBlockedOnATlsStreamIsCancellable) {
  run_test([]() -> Coro<void> {
    auto server = co_await tls_echo_server(server_context());
    auto client = tls_client(client_context());
    auto [r, w] = co_await asyncio::open_connection("127.0.0.1", server.port(), client);
    auto blocked = asyncio::create_task(r.readline());
    co_await asyncio::sleep(0.01);
    blocked.cancel();
    co_await expect_await_throws<asyncio::CancelledError>(blocked, "not cancelled");
    w.write(std::string_view("after\n"));  // the stream goes on
    EXPECT_EQ(co_await r.readline(), "after\n");
    co_await close_both(w, server);
  }());
}

TEST(TlsStreams, UnixSocketsCarryTlsToo) {
  run_test([]() -> Coro<void> {
    const std::string path = pki().dir + "/tls.sock";
    asyncio::ClientConnected handler = echo_lines;
    auto options = tls_server(server_context());
    auto server = co_await asyncio::start_unix_server(handler, path, options);
    auto no_name = tls_client(client_context());
    co_await expect_await_throws<std::invalid_argument>(
        asyncio::open_unix_connection(path, no_name), "no server_hostname",
        "check_hostname requires server_hostname");
    auto client = tls_client(client_context(), "localhost");
    auto [r, w] = co_await asyncio::open_unix_connection(path, client);
    w.write(std::string_view("local\n"));
    EXPECT_EQ(co_await r.readline(), "local\n");
    co_await close_both(w, server);
  }());
}

// An encrypted key loads with its password; a wrong or missing one is an SSLError, never a
// prompt on the terminal.
TEST(TlsContext, AnEncryptedKeyNeedsItsPassword) {
  ssl::SSLContext c(ssl::Protocol::TLS_SERVER);
  EXPECT_THROW(c.load_cert_chain(pki().server_cert, pki().server_key_sealed, "wrong"),
               ssl::SSLError);
  try {
    c.load_cert_chain(pki().server_cert, pki().server_key_sealed);
    ADD_FAILURE() << "an encrypted key loaded without its password";
  } catch (const ssl::SSLError& e) {
    EXPECT_NE(std::string(e.what()).find("no password was given"), std::string::npos) << e.what();
  }
  c.load_cert_chain(pki().server_cert, pki().server_key_sealed, "sesame");
  run_test([&]() -> Coro<void> {
    auto server = co_await tls_echo_server(c);
    auto client = tls_client(client_context());
    auto [r, w] = co_await asyncio::open_connection("127.0.0.1", server.port(), client);
    w.write(std::string_view("sealed\n"));
    EXPECT_EQ(co_await r.readline(), "sealed\n");
    co_await close_both(w, server);
  }());
}

TEST(TlsContext, BadArgumentsAreClearErrors) {
  EXPECT_THROW(server_context("/nonexistent/cert.pem"), asyncio::FileNotFoundError);
  ssl::SSLContext c(ssl::Protocol::TLS_CLIENT);
  EXPECT_TRUE(c.check_hostname());
  EXPECT_EQ(c.verify_mode(), ssl::VerifyMode::CERT_REQUIRED);
  EXPECT_THROW(c.set_verify_mode(ssl::VerifyMode::CERT_NONE), std::invalid_argument);
  EXPECT_THROW(c.load_verify_locations(), std::invalid_argument);
  EXPECT_THROW(c.load_verify_locations("", "", "not a certificate"), std::invalid_argument);
  EXPECT_THROW(c.set_alpn_protocols({""}), std::invalid_argument);
  EXPECT_THROW(c.set_ciphers("NO-SUCH-CIPHER"), ssl::SSLError);
  // A certificate and a key that do not belong together.
  EXPECT_THROW(c.load_cert_chain(pki().client_cert, pki().dir + "/stranger.pem"), ssl::SSLError);
  // cadata: the authority as text.
  std::ifstream in(pki().ca);
  const std::string pem((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  c.load_verify_locations("", "", pem);
  c.set_minimum_version(ssl::TLSVersion::TLSv1_3);
  EXPECT_EQ(c.minimum_version(), ssl::TLSVersion::TLSv1_3);

  ssl::SSLContext s(ssl::Protocol::TLS_SERVER);
  EXPECT_FALSE(s.check_hostname());
  EXPECT_EQ(s.verify_mode(), ssl::VerifyMode::CERT_NONE);
  s.set_check_hostname(true);
  EXPECT_EQ(s.verify_mode(), ssl::VerifyMode::CERT_REQUIRED);
}

TEST(TlsStreams, ContextsThatCanNotWorkAreRefusedBeforeConnecting) {
  run_test([]() -> Coro<void> {
    asyncio::ClientConnected handler = echo_lines;
    auto client_side = tls_server(client_context());
    co_await expect_await_throws<std::invalid_argument>(
        asyncio::start_server(handler, "127.0.0.1", 0, client_side), "a client context served",
        "TLS_SERVER");
    auto no_cert = tls_server(ssl::SSLContext(ssl::Protocol::TLS_SERVER));
    co_await expect_await_throws<std::invalid_argument>(
        asyncio::start_server(handler, "127.0.0.1", 0, no_cert), "no certificate",
        "load_cert_chain");
    auto server = co_await asyncio::start_server(handler, "127.0.0.1", 0);
    auto wrong_side = tls_client(server_context());
    co_await expect_await_throws<std::invalid_argument>(
        asyncio::open_connection("127.0.0.1", server.port(), wrong_side), "a server context",
        "TLS_CLIENT");
    asyncio::ConnectionOptions plain;
    plain.server_hostname = "localhost";
    co_await expect_await_throws<std::invalid_argument>(
        asyncio::open_connection("127.0.0.1", server.port(), plain), "server_hostname, no ssl",
        "only meaningful with ssl");
    server.close();
    co_await server.wait_closed();
  }());
}

// CPython's ssl module at the other end, both ways: its asyncio client against a gilio server,
// and gilio's client against its asyncio server.
TEST(TlsStreams, CPythonsSslTalksToGilioBothWays) {
  run_test(
      []() -> Coro<void> {
        asyncio::ClientConnected handler = echo_lines;
        auto options = tls_server(server_context());
        auto server = co_await asyncio::start_server(handler, "127.0.0.1", 0, options);
        const std::string client_py =
            "import asyncio, ssl, sys\n"
            "async def main():\n"
            "    ctx = ssl.create_default_context(cafile=sys.argv[2])\n"
            "    r, w = await asyncio.open_connection('127.0.0.1', int(sys.argv[1]), ssl=ctx,\n"
            "                                         server_hostname='localhost')\n"
            "    w.write(b'from python\\n')\n"
            "    line = await r.readline()\n"
            "    print(w.get_extra_info('ssl_object').version(), line.decode().strip())\n"
            "    w.close()\n"
            "    await w.wait_closed()\n"
            "asyncio.run(main())\n";
        std::vector<std::string> argv{"/usr/bin/python3", "-c", client_py,
                                      std::to_string(server.port()), pki().ca};
        asyncio::subprocess::Options out;
        out.stdout_ = asyncio::subprocess::PIPE;
        auto py = co_await asyncio::create_subprocess_exec(argv, out);
        auto [said, err] = co_await py.communicate();
        EXPECT_EQ(said, "TLSv1.3 from python\n");
        EXPECT_EQ(co_await py.wait(), 0);
        server.close();
        co_await server.wait_closed();

        const std::string server_py =
            "import asyncio, ssl, sys\n"
            "async def echo(r, w):\n"
            "    w.write(await r.readline())\n"
            "    await w.drain()\n"
            "    w.close()\n"
            "async def main():\n"
            "    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)\n"
            "    ctx.load_cert_chain(sys.argv[1])\n"
            "    s = await asyncio.start_server(echo, '127.0.0.1', 0, ssl=ctx)\n"
            "    print(s.sockets[0].getsockname()[1], flush=True)\n"
            "    await asyncio.sleep(30)\n"
            "asyncio.run(main())\n";
        std::vector<std::string> argv2{"/usr/bin/python3", "-c", server_py, pki().server};
        auto pys = co_await asyncio::create_subprocess_exec(argv2, out);
        const std::string port = co_await pys.stdout_().readline();
        auto client = tls_client(client_context(), "localhost");
        auto [r, w] = co_await asyncio::open_connection("127.0.0.1", std::stoi(port), client);
        w.write(std::string_view("from gilio\n"));
        EXPECT_EQ(co_await r.readline(), "from gilio\n");
        EXPECT_EQ(co_await r.read(), "");  // its close() sends close_notify
        w.close();
        pys.kill();
        co_await pys.wait();
      }(),
      60.0);
}

namespace {

// A protocol that keeps what it is given, for a test to wait on (and echoes it, if `echo`).
struct Collector : asyncio::Protocol {
  asyncio::Transport transport;
  std::string got;
  bool echo = false;
  int made = 0;
  std::exception_ptr error;  // connection_lost's
  asyncio::Event more;
  asyncio::Event lost;
  void connection_made(asyncio::Transport& t) override {
    transport = t;
    ++made;
  }
  void data_received(std::string data) override {
    if (echo) transport.write(std::string_view(data));
    got += data;
    more.set();
  }
  void connection_lost(std::exception_ptr e) override {
    error = std::move(e);
    lost.set();
  }
};

// A server's factory: a new P for each connection, the last one kept in `slot`.
template <class P>
asyncio::ProtocolFactory keeping(std::shared_ptr<P>& slot, bool echo = false) {
  return [&slot, echo] {
    slot = std::make_shared<P>();
    slot->echo = echo;
    return slot;
  };
}

Coro<void> until_got(Collector& p, std::string text) {
  while (p.got.find(text) == std::string::npos) {
    p.more.clear();
    co_await p.more.wait();
  }
}

}  // namespace

// create_server and create_connection with ssl=: the protocols see and write plaintext, and
// connection_made comes after the handshake, as over asyncio's SSL transport.
TEST(TlsProtocols, ProtocolsSeePlaintextOnBothSidesOfATlsConnection) {
  run_test([]() -> Coro<void> {
    std::shared_ptr<Collector> served;
    asyncio::ProtocolFactory serve = keeping(served, true);
    auto options = tls_server(server_context());
    auto server = co_await asyncio::create_server(serve, "127.0.0.1", 0, options);
    auto make = [] { return std::make_shared<Collector>(); };
    auto client = tls_client(client_context());
    auto [transport, protocol] =
        co_await asyncio::create_connection(make, "127.0.0.1", server.port(), client);
    EXPECT_TRUE(transport.ssl_object().has_value());
    EXPECT_FALSE(transport.can_write_eof());
    EXPECT_THROW(transport.write_eof(), std::runtime_error);
    transport.write(std::string_view("through the transport\n"));  // still writable
    co_await until_got(*protocol, "\n");
    EXPECT_EQ(protocol->got, "through the transport\n");
    EXPECT_TRUE(served && served->transport.ssl_object().has_value() &&
                served->transport.ssl_object()->server_side());
    transport.close();
    co_await protocol->lost.wait();
    if (served) co_await served->lost.wait();  // the client's close_notify: the server's EOF
    server.close();
    co_await server.wait_closed();
  }());
}

// ---- loop.start_tls on a transport ----

namespace {

// A STARTTLS server's protocol, as SMTP's: a plain greeting; at "STARTTLS\n" it answers
// "GO AHEAD\n" and takes the server's side of TLS on its transport; then it echoes.
struct StartTlsServer : Collector, std::enable_shared_from_this<StartTlsServer> {
  std::optional<ssl::SSLObject> tls;
  asyncio::Event upgraded;
  void connection_made(asyncio::Transport& t) override {
    Collector::connection_made(t);
    t.write(std::string_view("220 ready\n"));
  }
  void data_received(std::string data) override {
    if (tls) {
      transport.write(std::string_view(data));
    } else if ((got += data) == "STARTTLS\n") {
      transport.write(std::string_view("GO AHEAD\n"));
      asyncio::create_task(upgrade());
    }
  }
  Coro<void> upgrade() {
    asyncio::StartTlsOptions options;
    options.server_side = true;
    ssl::SSLContext context = server_context();
    std::shared_ptr<StartTlsServer> self = shared_from_this();
    asyncio::Transport now = co_await asyncio::start_tls(transport, self, context, options);
    tls = now.ssl_object();
    upgraded.set();
  }
};

// Bytes received and not yet read from a socket.
int unread_bytes(int fd) {
  int n = -1;
  ::ioctl(fd, FIONREAD, &n);
  return n;
}

// A plain transport over `fd` (a socketpair's end) whose task waits in its first read: the
// task runs before this coroutine goes on, since the ready queue is FIFO.
Coro<std::pair<asyncio::Transport, std::shared_ptr<Collector>>> reading_transport(int fd) {
  auto make = [] { return std::make_shared<Collector>(); };
  const asyncio::Socket sock{fd};
  auto connected = co_await asyncio::connect_accepted_socket(make, sock);
  co_await asyncio::sleep(0);
  co_return connected;
}

}  // namespace

// loop.start_tls on both ends of a STARTTLS conversation: each side's transport is waiting in a
// read when it upgrades (the read is interrupted, nothing lost), the same protocols go on with
// plaintext, and connection_made is not called again.
TEST(TlsProtocols, StartTlsUpgradesATransportInTheMiddleOfAConversation) {
  run_test([]() -> Coro<void> {
    std::shared_ptr<StartTlsServer> served;
    asyncio::ProtocolFactory serve = keeping(served);
    auto server = co_await asyncio::create_server(serve, "127.0.0.1", 0);
    auto make = [] { return std::make_shared<Collector>(); };
    auto [transport, client] =
        co_await asyncio::create_connection(make, "127.0.0.1", server.port());
    co_await until_got(*client, "220 ready\n");
    transport.write(std::string_view("STARTTLS\n"));
    co_await until_got(*client, "GO AHEAD\n");
    EXPECT_FALSE(transport.ssl_object().has_value());
    client->got.clear();
    asyncio::StartTlsOptions options;
    options.server_hostname = "localhost";
    ssl::SSLContext context = client_context();
    asyncio::Transport secure = co_await asyncio::start_tls(transport, client, context, options);
    EXPECT_TRUE(secure.ssl_object().has_value() && !secure.ssl_object()->server_side());
    EXPECT_TRUE(secure.is_reading());
    secure.write(std::string_view("secret\n"));
    co_await until_got(*client, "secret\n");
    EXPECT_EQ(client->got, "secret\n");
    co_await served->upgraded.wait();
    EXPECT_TRUE(served->tls.has_value() && served->tls->server_side());
    EXPECT_EQ(client->made, 1);
    EXPECT_EQ(served->made, 1);
    co_await expect_await_throws<std::runtime_error>(
        asyncio::start_tls(secure, client, context, options), "TLS twice", "already uses TLS");
    secure.close();
    co_await client->lost.wait();
    co_await served->lost.wait();
    EXPECT_EQ(client->error, nullptr);
    server.close();
    co_await server.wait_closed();
  }());
}

// Bytes that a transport's read took while reading was paused, before start_tls, are the
// handshake's first — here not TLS at all, so the handshake fails at once (were they dropped,
// it would wait for its timeout instead); the protocol never sees them, and its
// connection_lost gets the SSLError.
TEST(TlsProtocols, BytesReadBeforeStartTlsAreTheHandshakesFirst) {
  int fds[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
  run_test([&]() -> Coro<void> {
    auto [transport, protocol] = co_await reading_transport(fds[0]);
    transport.pause_reading();  // the read stays in flight
    const std::string junk = "not a TLS record\n";
    EXPECT_EQ(::send(fds[1], junk.data(), junk.size(), 0), static_cast<ssize_t>(junk.size()));
    for (int i = 0; i < 100000 && unread_bytes(fds[0]) != 0; ++i)
      co_await asyncio::sleep(0);
    EXPECT_EQ(unread_bytes(fds[0]), 0);  // the read in flight took them
    asyncio::StartTlsOptions options;
    options.server_side = true;
    options.ssl_handshake_timeout = 5;
    ssl::SSLContext context = server_context();
    co_await expect_await_throws<ssl::SSLError>(
        asyncio::start_tls(transport, protocol, context, options), "a handshake of junk");
    co_await protocol->lost.wait();
    EXPECT_EQ(protocol->got, "");
    bool ssl_error = false;
    try {
      if (protocol->error) std::rethrow_exception(protocol->error);
    } catch (const ssl::SSLError&) {
      ssl_error = true;
    }
    EXPECT_TRUE(ssl_error) << "connection_lost should have the handshake's error";
  }());
  ::close(fds[1]);
}

// What start_tls refuses: a context of the wrong side before the transport stops reading; a
// client context that checks host names without one, once it has stopped — after which the
// transport reads again, as if start_tls had not been called; a pipe's transport.
TEST(TlsProtocols, StartTlsRefusesBadArgumentsAndTheTransportReadsOn) {
  int fds[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
  run_test([&]() -> Coro<void> {
    auto [transport, protocol] = co_await reading_transport(fds[0]);
    auto make = [] { return std::make_shared<Collector>(); };
    asyncio::StartTlsOptions as_server;
    as_server.server_side = true;
    ssl::SSLContext client_side = client_context();
    co_await expect_await_throws<std::invalid_argument>(
        asyncio::start_tls(transport, protocol, client_side, as_server), "a client context",
        "Protocol::TLS_SERVER");
    co_await expect_await_throws<std::invalid_argument>(
        asyncio::start_tls(transport, protocol, client_side), "no host name",
        "check_hostname requires server_hostname");
    EXPECT_TRUE(transport.is_reading());
    const std::string hello = "still plain\n";
    EXPECT_EQ(::send(fds[1], hello.data(), hello.size(), 0), static_cast<ssize_t>(hello.size()));
    co_await until_got(*protocol, "still plain\n");
    EXPECT_FALSE(transport.ssl_object().has_value());
    transport.close();
    co_await protocol->lost.wait();
    EXPECT_EQ(protocol->error, nullptr);

    int pipe_fds[2];
    EXPECT_EQ(::pipe(pipe_fds), 0);
    auto [reading, sink] = co_await asyncio::connect_read_pipe(make, pipe_fds[0]);
    ssl::SSLContext server_side = server_context();
    co_await expect_await_throws<std::runtime_error>(
        asyncio::start_tls(reading, sink, server_side, as_server), "a pipe", "pipe");
    ::close(pipe_fds[1]);
    co_await sink->lost.wait();
  }());
  ::close(fds[1]);
}
