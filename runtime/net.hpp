// runtime/net.hpp — what sockets.cpp lends to streams.cpp and datagrams.cpp (internal, not
// installed): address formatting, name resolution, Unix socket addresses, one connect attempt,
// an errno as an exception_ptr, the largest single send or recv; and what streams.cpp lends to
// subprocess.cpp and protocols.cpp.
#pragma once

#include <sys/socket.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "gilio/asyncio/coro.hpp"
#include "gilio/asyncio/exceptions.hpp"

namespace gilio::ssl {
class SSLContext;
}  // namespace gilio::ssl
namespace gilio::asyncio {
class Event;
class StreamReader;
class StreamWriter;
}  // namespace gilio::asyncio

namespace gilio::asyncio::detail {

// An IPv4 or IPv6 address as a numeric host and a port.
std::pair<std::string, int> host_and_port(const sockaddr* sa);
// `len`: the address's length, as the kernel gave it (a Unix socket's name depends on it).
std::string describe_address(const sockaddr* sa, socklen_t len = sizeof(sockaddr_storage));
// The same for an address kept in a sockaddr_storage.
std::string where_of(const sockaddr_storage& ss);
// A received datagram's sender (recvmsg's address and its length), as datagram_received and
// sock_recvfrom give it: a numeric host and a port, or a Unix socket's path ("" if it is not
// bound) and 0.
std::pair<std::string, int> sender_of(const sockaddr_storage& from, socklen_t len);
std::string peer_of(int fd);
// An int option of level SOL_SOCKET (SO_TYPE, SO_DOMAIN, SO_ACCEPTCONN), or -1 with errno set.
int socket_option(int fd, int name);
// The socket's own address, the same way ("(closed)" if it has none to give).
std::string name_of(int fd);
// `host` as a numeric address of `family` (AF_UNSPEC: IPv4 or IPv6) with `port`, parsed here and
// now; std::nullopt if it is not one (a name, or an address of the other family).
std::optional<sockaddr_storage> numeric_address_of(const std::string& host, int port, int family);
// Numeric addresses directly; names through getaddrinfo in the default executor, asked for
// `family` only (AF_UNSPEC: any) with getaddrinfo's `flags` (AI_PASSIVE: an empty host is every
// interface, not the loopback).
Coro<std::vector<sockaddr_storage>> resolve(std::string host, int port, int socktype,
                                            int family = AF_UNSPEC, int flags = 0);
socklen_t address_length(const sockaddr_storage& ss);
// A Unix domain socket's address: a path, or with a leading NUL a name in Linux's abstract
// namespace. std::invalid_argument if empty or holding a NUL, OSError if too long; `who` names
// the caller in the message.
sockaddr_storage unix_address(const std::string& path, const char* who);
// A socket file left at `path` by an earlier socket would make bind fail: asyncio removes it
// first. A file of any other kind stays (bind then reports EADDRINUSE); an abstract name has none.
void remove_stale_socket_file(const std::string& path);
// A Unix socket's address as the path unix_address takes ('\0' first: abstract), "" if unnamed.
std::string unix_path_of(const sockaddr* sa, socklen_t len);
// A Unix datagram peer as sendto names it, a path and port 0 (what unix_path_of gives back);
// another port is std::invalid_argument.
sockaddr_storage unix_peer(const std::string& path, int port, const char* who);
// One connect attempt to one address: 0, or the errno.
Coro<int> connect_to(int fd, const sockaddr_storage& ss);
// What sock_sendfile refuses, as asyncio's _check_sendfile_params: a socket that is not
// SOCK_STREAM, a file that is not regular, a count of 0, an offset past INT64_MAX. `who` begins
// each message.
void check_sendfile(int sock, int file_fd, std::uint64_t offset, std::optional<std::size_t> count,
                    const std::string& who);
// The file's half of those checks: a descriptor that is open, not a directory; a count that is
// not 0; an offset in range.
void check_sendfile_source(int file_fd, std::uint64_t offset, std::optional<std::size_t> count,
                           const std::string& who);
// Whether the file has a position. A pipe or a socket has none: it is read from where it is, as
// asyncio's fallback reads it, and an offset in it is an error (ESPIPE; asyncio's
// file.seek(offset) fails alike).
bool sendfile_source_seekable(int file_fd, std::uint64_t offset, const std::string& who);
// raise_os_error's exception, caught: for an error to store rather than throw.
std::exception_ptr os_error_ptr(int err, const std::string& what);

// streams.cpp lends subprocess.cpp this: a stream over `fd`, a pipe's read end (`pipe`) or a
// socket, named `name` in its errors.
class StreamRef;
StreamRef stream_of(int fd, std::size_t limit, std::string name, bool pipe);

// ...and protocols.cpp this: a transport's hold on its stream. Bound (`wake` not null), a failed
// send closes the stream, since a transport's send error is fatal, and the stream's close sets
// `wake`; nullptr lets go. write_error_of: the error of a send that failed, if one has.
void bind_transport(const StreamWriter& writer, Event* wake);
std::exception_ptr write_error_of(const StreamWriter& writer);
// drain() with asyncio's rule for resume_writing(): waits while the unsent bytes are above the
// low-water mark (drain() itself waits only once they are above the high one).
Coro<void> drain_to_low_water(const StreamWriter& writer);
// Clears O_NONBLOCK on a descriptor the runtime takes over (a caller's socket, a pipe given to a
// pipe transport): io_uring's operations want it blocking (streams.cpp says why).
void make_blocking(int fd);
// A StreamReaderProtocol's reader (StreamReader::fed): `flow` pauses (true) and resumes (false)
// the transport that feeds it; null: none.
void set_feed_flow(const StreamReader& reader, std::function<void(bool)> flow);
// StreamReader::feed_data for a string the caller gives up: taken as it is when the reader's
// buffer is empty (a StreamReaderProtocol's data_received pieces), copied in otherwise.
void feed_owned(const StreamReader& reader, std::string data);
// loop.start_tls on a transport's stream (protocols.cpp): StreamWriter::start_tls with the side
// named, once the transport's reading task has stopped reading; `unread` gives back the bytes
// that task's last read took, to be the first of the handshake.
Coro<void> start_tls_on(const StreamWriter& writer, const ssl::SSLContext& context,
                        bool server_side, const std::string& server_hostname,
                        double ssl_handshake_timeout);
void unread(const StreamReader& reader, std::string_view bytes);
// asyncio's _interleave_addrinfos (open_connection's `interleave`): the addresses grouped by
// family in order of first appearance; `first_count` - 1 of the first family, then one of each
// family in turn. Not empty.
std::vector<sockaddr_storage> interleaved(const std::vector<sockaddr_storage>& addresses,
                                          int first_count);
// Ends the read waiting on a socket stream, if one is: it throws ReadInterrupted, or returns what
// it got if its receive completed first. Nothing received is lost: it stays in the buffer.
struct ReadInterrupted {};
void interrupt_read(const StreamReader& reader);
// StreamWriter::set_write_buffer_limits, named `who` in its errors (a Transport's or a writer's).
void set_write_buffer_limits(const StreamWriter& writer, std::optional<std::size_t> high,
                             std::optional<std::size_t> low, const char* who);

// No single send or recv asks for more than 1 GiB (the kernel's result is an int).
inline unsigned clamp_io_len(std::size_t n) {
  return static_cast<unsigned>(std::min<std::size_t>(n, 1u << 30));
}

}  // namespace gilio::asyncio::detail
