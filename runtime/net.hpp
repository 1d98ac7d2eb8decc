// runtime/net.hpp — what sockets.cpp lends to streams.cpp (internal, not installed): address
// formatting, name resolution, one connect attempt, and an errno as an exception_ptr.
#pragma once

#include <sys/socket.h>

#include <exception>
#include <string>
#include <vector>

#include "gilio/asyncio/coro.hpp"

namespace gilio::asyncio::detail {

std::string describe_address(const sockaddr* sa);
std::string peer_of(int fd);
// Numeric addresses directly; names through getaddrinfo in the default executor.
Coro<std::vector<sockaddr_storage>> resolve(std::string host, int port, int socktype);
socklen_t address_length(const sockaddr_storage& ss);
// One connect attempt to one address: 0, or the errno.
Coro<int> connect_to(int fd, const sockaddr_storage& ss);
// raise_os_error's exception, caught: for an error to store rather than throw.
std::exception_ptr os_error_ptr(int err, const std::string& what);

}  // namespace gilio::asyncio::detail
