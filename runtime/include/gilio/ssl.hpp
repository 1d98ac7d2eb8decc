// gilio/ssl.hpp — TLS for streams: SSLContext, SSLObject and the SSL errors; mirrors the part of
// Python's ssl module (Lib/ssl.py over Modules/_ssl.c) that asyncio's streams take as their
// ssl= argument, and asyncio's Lib/asyncio/sslproto.py, which runs TLS over a transport.
//
// A context is the configuration shared by many connections: which side it is, the certificate
// and key it presents, the authorities it trusts, whether it checks the peer's certificate and
// name, the ALPN protocols it offers. Copies of an SSLContext are the same context (a Python
// object passed around), so setting an option on one is seen by every copy; set them before the
// first connection uses it. The defaults are Python's:
//   - SSLContext(Protocol::TLS_CLIENT): verify_mode CERT_REQUIRED, check_hostname true, no
//     authority loaded yet (load_verify_locations or load_default_certs);
//   - SSLContext(Protocol::TLS_SERVER): verify_mode CERT_NONE, check_hostname false, and a
//     certificate to load (load_cert_chain) before it can serve;
//   - create_default_context(): a client context that trusts the system's authorities (or the
//     cafile given); with Purpose::CLIENT_AUTH, a server context.
// TLS 1.2 is the oldest version either side accepts, as in Python 3.10 and later.
//
// Pass one as ConnectionOptions::ssl (open_connection) or ServerOptions::ssl (start_server),
// or upgrade a plain stream with StreamWriter::start_tls (all in streams.hpp). How the bytes
// flow: the TLS engine (OpenSSL's) works on two memory buffers, not on the socket. What a
// receive brings goes into one and comes out decrypted into the reader's buffer, where the
// reads find it as they find a plain stream's bytes; what write() is given comes out encrypted
// into the bytes the writer sends. So the io_uring receive and send, their buffer ring, the
// backpressure and the cancellation are the plain stream's, unchanged (runtime/tls.cpp says
// more). runtime/tls.cpp is the only file that includes OpenSSL's headers.
//
// Errors: a handshake that fails throws SSLError, and SSLCertVerificationError when the peer's
// certificate or name does not check out (with OpenSSL's verify code and message, as Python
// has them); a file that load_cert_chain or load_verify_locations can not open throws the
// OSError for its errno; a bad option is std::invalid_argument (Python's ValueError).
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "gilio/asyncio/exceptions.hpp"

namespace gilio::ssl {

namespace detail {
struct ContextState;  // runtime/tls.cpp: an SSL_CTX and what Python keeps beside it
class TlsSession;     // runtime/tls.cpp: one connection's TLS engine
}  // namespace detail

// Python's ssl.SSLError: an OSError whose message is OpenSSL's reason, and reason() the same
// words alone ("wrong version number", "certificate verify failed").
class SSLError : public asyncio::OSError {
 public:
  SSLError(std::string reason, const std::string& what)
      : asyncio::OSError(EPROTO, what), reason_(std::move(reason)) {}
  const std::string& reason() const noexcept { return reason_; }

 private:
  std::string reason_;
};

// The peer's certificate did not verify, or it does not name the host asked for: verify_code()
// is OpenSSL's X509_V_ERR_ code and verify_message() its words ("self-signed certificate",
// "hostname mismatch"), as in Python.
class SSLCertVerificationError : public SSLError {
 public:
  SSLCertVerificationError(long code, std::string message, const std::string& what)
      : SSLError("certificate verify failed", what), code_(code), message_(std::move(message)) {}
  long verify_code() const noexcept { return code_; }
  const std::string& verify_message() const noexcept { return message_; }

 private:
  long code_;
  std::string message_;
};

enum class Protocol { TLS_CLIENT, TLS_SERVER };
// What create_default_context's context is for: talking to servers (a client's) or to clients.
enum class Purpose { SERVER_AUTH, CLIENT_AUTH };
enum class VerifyMode { CERT_NONE, CERT_OPTIONAL, CERT_REQUIRED };
enum class TLSVersion { TLSv1_2, TLSv1_3 };

class SSLContext {
 public:
  explicit SSLContext(Protocol protocol);
  static SSLContext create_default_context(Purpose purpose = Purpose::SERVER_AUTH,
                                           const std::string& cafile = "");

  Protocol protocol() const;
  // The certificate (PEM, followed by its chain) and its private key (PEM; in the certificate's
  // file when keyfile is empty), decrypted with `password` if it is encrypted. SSLError if the
  // key does not match, or is encrypted and the password is wrong or missing (OpenSSL would
  // prompt on the terminal for one; this never does).
  void load_cert_chain(const std::string& certfile, const std::string& keyfile = "",
                       const std::string& password = "");
  // Authorities to trust: a PEM file, a directory hashed as c_rehash makes it, or PEM text.
  void load_verify_locations(const std::string& cafile = "", const std::string& capath = "",
                             const std::string& cadata = "");
  // The system's authorities (Debian's /etc/ssl/certs).
  void load_default_certs();

  VerifyMode verify_mode() const;
  // CERT_NONE while check_hostname is on is std::invalid_argument, as Python's ValueError.
  void set_verify_mode(VerifyMode mode);
  bool check_hostname() const;
  // Turning it on also turns CERT_NONE into CERT_REQUIRED, as Python does.
  void set_check_hostname(bool check);
  TLSVersion minimum_version() const;
  void set_minimum_version(TLSVersion version);
  // OpenSSL's cipher list syntax, for TLS 1.2 (TLS 1.3's suites are OpenSSL's defaults).
  void set_ciphers(const std::string& ciphers);
  // Application protocols to offer (a client) or accept (a server, which picks the first of its
  // own that the client offers), such as {"h2", "http/1.1"}.
  void set_alpn_protocols(const std::vector<std::string>& protocols);

  std::shared_ptr<detail::ContextState> state() const noexcept { return s_; }

 private:
  std::shared_ptr<detail::ContextState> s_;
};

// The peer's certificate, as far as Python's getpeercert() describes it.
struct Certificate {
  std::string subject;                         // one line, RFC 2253: "CN=localhost,O=gilio"
  std::string issuer;                          // the same, for who signed it
  std::vector<std::string> subject_alt_names;  // "DNS:localhost", "IP Address:127.0.0.1"
  std::string not_before;                      // "Nov 24 09:00:00 2026 GMT", as Python's
  std::string not_after;
  std::string serial_number;  // hexadecimal
};

// A TLS connection's facts, once its handshake is done: asyncio's
// writer.get_extra_info('ssl_object'), from StreamWriter::ssl_object().
class SSLObject {
 public:
  explicit SSLObject(std::shared_ptr<detail::TlsSession> s) : s_(std::move(s)) {}
  std::string version() const;  // "TLSv1.3"
  std::string cipher() const;   // the suite's name, "TLS_AES_256_GCM_SHA384"
  std::optional<std::string> selected_alpn_protocol() const;
  bool server_side() const;
  std::string server_hostname() const;  // a client's: the name it asked for ("" if none)
  // The peer's certificate; none if it sent none (a client, unless the server asked).
  std::optional<Certificate> getpeercert() const;

 private:
  std::shared_ptr<detail::TlsSession> s_;
};

}  // namespace gilio::ssl
