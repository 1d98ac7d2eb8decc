// runtime/tls.hpp — one connection's TLS engine, as streams.cpp drives it (internal, not
// installed); mirrors the SSLObject-over-memory-BIOs half of Lib/asyncio/sslproto.py.
//
// The engine never sees the socket. feed() hands it the ciphertext a receive brought;
// handshake() and decrypt() consume it; every call that may produce bytes for the peer appends
// them to an `out` string the caller sends. So the stream keeps doing its own receives and sends
// through the ring, and this class does nothing but turn bytes into other bytes. The OpenSSL
// types stay in tls.cpp: this header names them only as incomplete structs.
#pragma once

#include <exception>
#include <memory>
#include <string>
#include <string_view>

#include "gilio/ssl.hpp"

struct ssl_st;  // OpenSSL's SSL
struct bio_st;  // OpenSSL's BIO

namespace gilio::ssl::detail {

// That `context` can take the side asked for: its protocol is that side's, and a server's has a
// certificate to present. std::invalid_argument, its message begun with `who`, if not.
void check_context(const SSLContext& context, bool server_side, const std::string& who);

class TlsSession {
 public:
  // `peer` names the other end in error messages ("127.0.0.1:4433").
  TlsSession(const SSLContext& context, bool server_side, const std::string& server_hostname,
             std::string peer);
  ~TlsSession();
  TlsSession(const TlsSession&) = delete;
  TlsSession& operator=(const TlsSession&) = delete;

  // Ciphertext received from the peer.
  void feed(std::string_view cipher);

  enum class Progress { done, want_more, failed };
  // One step of the handshake over what was fed: done, or more must be received first, or it
  // failed (error() says why; `out` may hold the alert that tells the peer).
  Progress handshake(std::string& out);

  enum class Read { more, closed, failed };
  // Appends to `plain` every whole record fed so far, decrypted. `closed`: the peer's
  // close_notify came (the stream's EOF); `failed`: error() says why. Records the engine must
  // answer (a TLS 1.3 key update) go to `out`.
  Read decrypt(std::string& plain, std::string& out);
  // Appends `plain`, encrypted, to `out`. Throws SSLError once the session has failed.
  void encrypt(std::string_view plain, std::string& out);
  // Appends the close_notify alert to `out` (once; nothing after a failure).
  void shutdown(std::string& out);

  std::exception_ptr error() const noexcept { return error_; }
  const std::string& peer() const noexcept { return peer_; }
  bool server_side() const noexcept { return server_side_; }
  const std::string& server_hostname() const noexcept { return hostname_; }
  ssl_st* native() const noexcept { return ssl_; }

 private:
  void take_output(std::string& out);
  std::exception_ptr failure(int ret, const char* during);

  ssl_st* ssl_ = nullptr;
  bio_st* in_ = nullptr;   // ciphertext from the peer (the engine reads it)
  bio_st* out_ = nullptr;  // ciphertext for the peer (the engine writes it)
  std::shared_ptr<ContextState> context_;
  std::string peer_;
  std::string hostname_;
  bool server_side_;
  bool shut_down_ = false;
  std::exception_ptr error_;
};

}  // namespace gilio::ssl::detail
