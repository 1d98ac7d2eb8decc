// runtime/tls.cpp — SSLContext, SSLObject and the TLS engine of one connection, over OpenSSL;
// mirrors Modules/_ssl.c (the context and its options, the error messages) and the memory-BIO
// half of Lib/asyncio/sslproto.py. The only file that includes OpenSSL's headers.
//
// asyncio runs TLS as a protocol between the transport and the application: the transport's
// bytes go into an ssl.MemoryBIO, an SSLObject reads them out decrypted, and what the
// application writes comes back out of a second MemoryBIO encrypted. gilio does the same with
// OpenSSL's memory BIOs, one pair per connection (TlsSession), and streams.cpp calls it at the
// two places where bytes cross: in a receive's completion (feed, then decrypt into the reader's
// buffer) and in write() (encrypt into the writer's pending bytes). Nothing here waits or knows
// the socket — so the engine can not block the loop, and every io_uring operation, its buffer
// ring and its cancellation are the plain stream's.
//
// The handshake is the one part that talks back and forth before any application byte moves:
// streams.cpp loops handshake() → send what it produced → receive → feed until it is done.
// Errors are built the way _ssl.c builds them: the reason OpenSSL queued, and for a certificate
// that did not verify, the verify result's code and words; a host name that does not match says
// which name it was not valid for.
#include "tls.hpp"

#include <arpa/inet.h>
#include <fmt/core.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstring>
#include <stdexcept>

namespace gilio::ssl {
namespace detail {

struct ContextState {
  SSL_CTX* ctx = nullptr;
  Protocol protocol = Protocol::TLS_CLIENT;
  VerifyMode verify = VerifyMode::CERT_NONE;
  bool check_hostname = false;
  std::string alpn;  // the server's protocols, in ALPN's wire format (length-prefixed)
  ~ContextState() { SSL_CTX_free(ctx); }
};

namespace {

// The reason OpenSSL queued last (the queue is emptied), or `otherwise`.
std::string queued_reason(const char* otherwise = "unknown error") {
  std::string reason = otherwise;
  while (const unsigned long e = ERR_get_error()) {
    if (const char* r = ERR_reason_error_string(e)) reason = r;
  }
  return reason;
}

[[noreturn]] void raise_ssl(const std::string& during) {
  std::string reason = queued_reason();
  throw SSLError(reason, during + ": " + reason);
}

// A file OpenSSL is about to open: Python's OSError for its errno when it can not be read.
void check_readable(const std::string& path, const char* who) {
  if (::access(path.c_str(), R_OK) != 0) asyncio::raise_os_error(errno, who + (": " + path));
}

bool is_ip_address(const std::string& host) {
  unsigned char buf[sizeof(in6_addr)];
  return ::inet_pton(AF_INET, host.c_str(), buf) == 1 ||
         ::inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

std::string bio_text(BIO* b) {
  char* data = nullptr;
  const long n = BIO_get_mem_data(b, &data);
  std::string s(data, n > 0 ? static_cast<std::size_t>(n) : 0);
  BIO_free(b);
  return s;
}

std::string name_text(const X509_NAME* name) {
  BIO* b = BIO_new(BIO_s_mem());
  X509_NAME_print_ex(b, name, 0, XN_FLAG_RFC2253);
  return bio_text(b);
}

std::string time_text(const ASN1_TIME* t) {
  BIO* b = BIO_new(BIO_s_mem());
  ASN1_TIME_print(b, t);
  return bio_text(b);
}

// A server's choice among the protocols the client offers: its own first, as _ssl.c's.
int select_alpn(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in,
                unsigned int inlen, void* arg) {
  auto* c = static_cast<ContextState*>(arg);
  unsigned char* chosen = nullptr;
  const int r =
      SSL_select_next_proto(&chosen, outlen, reinterpret_cast<const unsigned char*>(c->alpn.data()),
                            static_cast<unsigned int>(c->alpn.size()), in, inlen);
  if (r != OPENSSL_NPN_NEGOTIATED) return SSL_TLSEXT_ERR_NOACK;
  *out = chosen;
  return SSL_TLSEXT_ERR_OK;
}

// load_cert_chain's password, for an encrypted key: none given refuses (returns 0), as does one
// too long for OpenSSL's buffer.
int give_password(char* buf, int size, int, void* user) {
  const auto* password = static_cast<const std::string*>(user);
  if (password == nullptr || password->empty() || password->size() > static_cast<std::size_t>(size))
    return 0;
  std::memcpy(buf, password->data(), password->size());
  return static_cast<int>(password->size());
}

void apply_verify(ContextState& c) {
  int mode = SSL_VERIFY_NONE;
  if (c.verify != VerifyMode::CERT_NONE) mode = SSL_VERIFY_PEER;
  if (c.verify == VerifyMode::CERT_REQUIRED && c.protocol == Protocol::TLS_SERVER)
    mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
  SSL_CTX_set_verify(c.ctx, mode, nullptr);
}

}  // namespace
}  // namespace detail

// ---- SSLContext ----

SSLContext::SSLContext(Protocol protocol) : s_(std::make_shared<detail::ContextState>()) {
  const bool server = protocol == Protocol::TLS_SERVER;
  s_->ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
  if (s_->ctx == nullptr) detail::raise_ssl("SSLContext");
  s_->protocol = protocol;
  SSL_CTX_set_min_proto_version(s_->ctx, TLS1_2_VERSION);
  // Python's defaults: no compression, no renegotiation, the server's cipher order.
  SSL_CTX_set_options(s_->ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
                                   (server ? SSL_OP_CIPHER_SERVER_PREFERENCE : 0));
  s_->verify = server ? VerifyMode::CERT_NONE : VerifyMode::CERT_REQUIRED;
  s_->check_hostname = !server;
  detail::apply_verify(*s_);
}

SSLContext SSLContext::create_default_context(Purpose purpose, const std::string& cafile) {
  SSLContext c(purpose == Purpose::SERVER_AUTH ? Protocol::TLS_CLIENT : Protocol::TLS_SERVER);
  if (cafile.empty()) {
    c.load_default_certs();
  } else {
    c.load_verify_locations(cafile);
  }
  return c;
}

Protocol SSLContext::protocol() const {
  return s_->protocol;
}

void SSLContext::load_cert_chain(const std::string& certfile, const std::string& keyfile,
                                 const std::string& password) {
  const std::string& key = keyfile.empty() ? certfile : keyfile;
  detail::check_readable(certfile, "load_cert_chain");
  detail::check_readable(key, "load_cert_chain");
  ERR_clear_error();
  // The password is asked for through a callback, set only while the files load: without one,
  // OpenSSL would prompt on the terminal for an encrypted key.
  SSL_CTX_set_default_passwd_cb(s_->ctx, detail::give_password);
  SSL_CTX_set_default_passwd_cb_userdata(s_->ctx, const_cast<std::string*>(&password));
  const bool cert_ok = SSL_CTX_use_certificate_chain_file(s_->ctx, certfile.c_str()) == 1;
  const bool key_ok =
      cert_ok && SSL_CTX_use_PrivateKey_file(s_->ctx, key.c_str(), SSL_FILETYPE_PEM) == 1;
  SSL_CTX_set_default_passwd_cb(s_->ctx, nullptr);
  SSL_CTX_set_default_passwd_cb_userdata(s_->ctx, nullptr);
  if (!cert_ok) detail::raise_ssl("load_cert_chain: the certificate in " + certfile);
  if (!key_ok) {
    detail::raise_ssl("load_cert_chain: the private key in " + key +
                      (password.empty() ? " (if it is encrypted, no password was given)" : ""));
  }
  if (SSL_CTX_check_private_key(s_->ctx) != 1)
    detail::raise_ssl("load_cert_chain: the key in " + key + " does not match the certificate");
}

void SSLContext::load_verify_locations(const std::string& cafile, const std::string& capath,
                                       const std::string& cadata) {
  if (cafile.empty() && capath.empty() && cadata.empty())
    throw std::invalid_argument("load_verify_locations: cafile, capath and cadata are all empty");
  ERR_clear_error();
  if (!cafile.empty()) detail::check_readable(cafile, "load_verify_locations");
  if (!capath.empty()) detail::check_readable(capath, "load_verify_locations");
  if ((!cafile.empty() || !capath.empty()) &&
      SSL_CTX_load_verify_locations(s_->ctx, cafile.empty() ? nullptr : cafile.c_str(),
                                    capath.empty() ? nullptr : capath.c_str()) != 1) {
    detail::raise_ssl("load_verify_locations: " + cafile + capath);
  }
  if (cadata.empty()) return;
  BIO* b = BIO_new_mem_buf(cadata.data(), static_cast<int>(cadata.size()));
  X509_STORE* store = SSL_CTX_get_cert_store(s_->ctx);
  int loaded = 0;
  while (X509* cert = PEM_read_bio_X509(b, nullptr, nullptr, nullptr)) {
    X509_STORE_add_cert(store, cert);
    X509_free(cert);
    ++loaded;
  }
  BIO_free(b);
  ERR_clear_error();  // the end of the text reads as an error
  if (loaded == 0)
    throw std::invalid_argument("load_verify_locations: no PEM certificate in cadata");
}

void SSLContext::load_default_certs() {
  if (SSL_CTX_set_default_verify_paths(s_->ctx) != 1) detail::raise_ssl("load_default_certs");
}

VerifyMode SSLContext::verify_mode() const {
  return s_->verify;
}

void SSLContext::set_verify_mode(VerifyMode mode) {
  if (mode == VerifyMode::CERT_NONE && s_->check_hostname) {
    throw std::invalid_argument(
        "SSLContext.set_verify_mode: CERT_NONE while check_hostname is enabled");
  }
  s_->verify = mode;
  detail::apply_verify(*s_);
}

bool SSLContext::check_hostname() const {
  return s_->check_hostname;
}

void SSLContext::set_check_hostname(bool check) {
  s_->check_hostname = check;
  if (check && s_->verify == VerifyMode::CERT_NONE) set_verify_mode(VerifyMode::CERT_REQUIRED);
}

TLSVersion SSLContext::minimum_version() const {
  return SSL_CTX_get_min_proto_version(s_->ctx) == TLS1_3_VERSION ? TLSVersion::TLSv1_3
                                                                  : TLSVersion::TLSv1_2;
}

void SSLContext::set_minimum_version(TLSVersion version) {
  SSL_CTX_set_min_proto_version(s_->ctx,
                                version == TLSVersion::TLSv1_3 ? TLS1_3_VERSION : TLS1_2_VERSION);
}

void SSLContext::set_ciphers(const std::string& ciphers) {
  ERR_clear_error();
  if (SSL_CTX_set_cipher_list(s_->ctx, ciphers.c_str()) != 1) {
    ERR_clear_error();
    throw SSLError("No cipher can be selected.",
                   "SSLContext.set_ciphers(\"" + ciphers + "\"): no cipher can be selected");
  }
}

void SSLContext::set_alpn_protocols(const std::vector<std::string>& protocols) {
  std::string wire;
  for (const std::string& p : protocols) {
    if (p.empty() || p.size() > 255) {
      throw std::invalid_argument("SSLContext.set_alpn_protocols: \"" + p +
                                  "\": a protocol name is 1 to 255 bytes");
    }
    wire += static_cast<char>(p.size());
    wire += p;
  }
  s_->alpn = wire;
  if (s_->protocol == Protocol::TLS_SERVER) {
    SSL_CTX_set_alpn_select_cb(s_->ctx, detail::select_alpn, s_.get());
  } else if (SSL_CTX_set_alpn_protos(s_->ctx, reinterpret_cast<const unsigned char*>(wire.data()),
                                     static_cast<unsigned int>(wire.size())) != 0) {
    detail::raise_ssl("SSLContext.set_alpn_protocols");
  }
}

// ---- TlsSession ----

namespace detail {

void check_context(const SSLContext& context, bool server_side, const std::string& who) {
  const ContextState& c = *context.state();
  if (server_side && c.protocol != Protocol::TLS_SERVER)
    throw std::invalid_argument(who + ": a server side needs a Protocol::TLS_SERVER context");
  if (!server_side && c.protocol != Protocol::TLS_CLIENT)
    throw std::invalid_argument(who + ": a client side needs a Protocol::TLS_CLIENT context");
  if (server_side && SSL_CTX_get0_certificate(c.ctx) == nullptr) {
    throw std::invalid_argument(
        who + ": the server's SSLContext has no certificate (call load_cert_chain)");
  }
}

TlsSession::TlsSession(const SSLContext& context, bool server_side,
                       const std::string& server_hostname, std::string peer)
    : context_(context.state()),
      peer_(std::move(peer)),
      hostname_(server_hostname),
      server_side_(server_side) {
  const ContextState& c = *context_;
  check_context(context, server_side, "TLS");
  if (!server_side && c.check_hostname && server_hostname.empty())
    throw std::invalid_argument("TLS: check_hostname requires server_hostname");
  ssl_ = SSL_new(c.ctx);
  if (ssl_ == nullptr) raise_ssl("TLS: SSL_new");
  in_ = BIO_new(BIO_s_mem());
  out_ = BIO_new(BIO_s_mem());
  SSL_set_bio(ssl_, in_, out_);  // the SSL owns both now
  if (server_side) {
    SSL_set_accept_state(ssl_);
    return;
  }
  SSL_set_connect_state(ssl_);
  if (server_hostname.empty()) return;
  // SNI for a name, never for an address (RFC 6066); the name or address checked, if asked.
  const bool ip = is_ip_address(server_hostname);
  if (!ip) SSL_set_tlsext_host_name(ssl_, server_hostname.c_str());
  if (!c.check_hostname) return;
  X509_VERIFY_PARAM* param = SSL_get0_param(ssl_);
  X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
  const int ok = ip ? X509_VERIFY_PARAM_set1_ip_asc(param, server_hostname.c_str())
                    : X509_VERIFY_PARAM_set1_host(param, server_hostname.c_str(), 0);
  if (ok != 1) {
    SSL_free(ssl_);  // no destructor runs for a constructor that throws
    raise_ssl("TLS: server_hostname \"" + server_hostname + "\"");
  }
}

TlsSession::~TlsSession() {
  SSL_free(ssl_);  // and its BIOs
}

void TlsSession::feed(std::string_view cipher) {
  while (!cipher.empty()) {
    const int n = static_cast<int>(std::min<std::size_t>(cipher.size(), INT_MAX));
    BIO_write(in_, cipher.data(), n);  // a memory BIO takes all of it
    cipher.remove_prefix(static_cast<std::size_t>(n));
  }
}

void TlsSession::take_output(std::string& out) {
  const std::size_t n = BIO_ctrl_pending(out_);
  if (n == 0) return;
  const std::size_t old = out.size();
  out.resize(old + n);
  BIO_read(out_, out.data() + old, static_cast<int>(n));
}

std::exception_ptr TlsSession::failure(int ret, const char* during) {
  const int kind = SSL_get_error(ssl_, ret);
  const std::string where = fmt::format("{} with {}", during, peer_);
  const unsigned long first = ERR_peek_error();
  if (ERR_GET_LIB(first) == ERR_LIB_SSL &&
      ERR_GET_REASON(first) == SSL_R_CERTIFICATE_VERIFY_FAILED) {
    ERR_clear_error();
    const long code = SSL_get_verify_result(ssl_);
    std::string message = X509_verify_cert_error_string(code);
    if (code == X509_V_ERR_HOSTNAME_MISMATCH || code == X509_V_ERR_IP_ADDRESS_MISMATCH)
      message += ", certificate is not valid for '" + hostname_ + "'";
    return std::make_exception_ptr(
        SSLCertVerificationError(code, message, where + ": certificate verify failed: " + message));
  }
  std::string reason = queued_reason(
      kind == SSL_ERROR_ZERO_RETURN ? "the peer closed the TLS session" : "unexpected TLS error");
  return std::make_exception_ptr(SSLError(reason, where + ": " + reason));
}

TlsSession::Progress TlsSession::handshake(std::string& out) {
  ERR_clear_error();
  const int r = SSL_do_handshake(ssl_);
  take_output(out);  // the next flight, or the alert that says why it failed
  if (r == 1) return Progress::done;
  if (SSL_get_error(ssl_, r) == SSL_ERROR_WANT_READ) return Progress::want_more;
  error_ = failure(r, "TLS handshake");
  return Progress::failed;
}

TlsSession::Read TlsSession::decrypt(std::string& plain, std::string& out) {
  // Each record lands in a buffer on the stack and only its bytes are appended: sizing the string
  // for a whole record first zero-filled 16 KiB per call, twice per receive (the second call
  // finds nothing), for a 128-byte message.
  char record[16 * 1024];  // TLS's largest record
  Read result = Read::more;
  for (;;) {
    std::size_t n = 0;
    ERR_clear_error();
    const int r = SSL_read_ex(ssl_, record, sizeof record, &n);
    if (r == 1) {
      plain.append(record, n);
      continue;
    }
    const int kind = SSL_get_error(ssl_, r);
    if (kind == SSL_ERROR_WANT_READ) break;
    if (kind == SSL_ERROR_ZERO_RETURN) {
      result = Read::closed;
      break;
    }
    error_ = failure(r, "TLS read");
    result = Read::failed;
    break;
  }
  take_output(out);
  return result;
}

void TlsSession::encrypt(std::string_view plain, std::string& out) {
  if (error_) std::rethrow_exception(error_);
  while (!plain.empty()) {
    const std::size_t chunk = std::min<std::size_t>(plain.size(), std::size_t{1} << 30);
    std::size_t n = 0;
    ERR_clear_error();
    if (SSL_write_ex(ssl_, plain.data(), chunk, &n) != 1) {
      error_ = failure(0, "TLS write");
      take_output(out);
      std::rethrow_exception(error_);
    }
    plain.remove_prefix(n);
    take_output(out);
  }
}

void TlsSession::shutdown(std::string& out) {
  if (shut_down_ || error_ || SSL_is_init_finished(ssl_) != 1) return;
  shut_down_ = true;
  ERR_clear_error();
  SSL_shutdown(ssl_);
  ERR_clear_error();
  take_output(out);
}

}  // namespace detail

// ---- SSLObject ----

std::string SSLObject::version() const {
  return SSL_get_version(s_->native());
}

std::string SSLObject::cipher() const {
  const SSL_CIPHER* c = SSL_get_current_cipher(s_->native());
  return c != nullptr ? SSL_CIPHER_get_name(c) : "";
}

std::optional<std::string> SSLObject::selected_alpn_protocol() const {
  const unsigned char* p = nullptr;
  unsigned int len = 0;
  SSL_get0_alpn_selected(s_->native(), &p, &len);
  if (p == nullptr || len == 0) return std::nullopt;
  return std::string(reinterpret_cast<const char*>(p), len);
}

bool SSLObject::server_side() const {
  return s_->server_side();
}

std::string SSLObject::server_hostname() const {
  return s_->server_hostname();
}

std::optional<Certificate> SSLObject::getpeercert() const {
  X509* x = SSL_get0_peer_certificate(s_->native());
  if (x == nullptr) return std::nullopt;
  Certificate c;
  c.subject = detail::name_text(X509_get_subject_name(x));
  c.issuer = detail::name_text(X509_get_issuer_name(x));
  c.not_before = detail::time_text(X509_get0_notBefore(x));
  c.not_after = detail::time_text(X509_get0_notAfter(x));
  if (BIGNUM* bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), nullptr)) {
    char* hex = BN_bn2hex(bn);
    c.serial_number = hex;
    OPENSSL_free(hex);
    BN_free(bn);
  }
  auto* names =
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(x, NID_subject_alt_name, nullptr, nullptr));
  for (int i = 0; names != nullptr && i < sk_GENERAL_NAME_num(names); ++i) {
    const GENERAL_NAME* g = sk_GENERAL_NAME_value(names, i);
    if (g->type == GEN_DNS) {
      const ASN1_STRING* s = g->d.dNSName;
      c.subject_alt_names.push_back(
          "DNS:" + std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                               static_cast<std::size_t>(ASN1_STRING_length(s))));
    } else if (g->type == GEN_IPADD) {
      const ASN1_OCTET_STRING* s = g->d.iPAddress;
      char text[INET6_ADDRSTRLEN] = "";
      const int len = ASN1_STRING_length(s);
      if (len == 4 || len == 16)
        ::inet_ntop(len == 4 ? AF_INET : AF_INET6, ASN1_STRING_get0_data(s), text, sizeof text);
      c.subject_alt_names.push_back(std::string("IP Address:") + text);
    }
  }
  GENERAL_NAMES_free(names);
  return c;
}

}  // namespace gilio::ssl
