// gilio/asyncio/files.hpp — whole-file reads and writes through the ring.
//
// No asyncio twin: asyncio has no file I/O (regular files are always "ready", so a selector
// cannot help, and Python programs use threads — aiofiles, or loop.run_in_executor). io_uring
// reads and writes files natively, so here they are awaitable like sockets: open, read or write
// in chunks of up to 1 MiB, close — every step a submission, none blocking the loop, and each
// cancellable (the kernel is asked to cancel; the file descriptor is closed either way).
// Errors throw the OSError subclass for the errno (FileNotFoundError, PermissionError, ...),
// naming the path.
#pragma once

#include <string>
#include <string_view>

#include "gilio/asyncio/coro.hpp"

namespace gilio::asyncio {

// The whole content of the file at `path`, read into one string of the size fstat gives (a
// file that does not know its size, as a pipe, is read until its end all the same).
Coro<std::string> read_file(std::string path);
// Replaces (or creates, mode 0644) the file at `path` with `data`. The coroutine keeps its own
// `data` (it may run after the caller's copy is gone): pass a large one with std::move.
Coro<void> write_file(std::string path, std::string data);

}  // namespace gilio::asyncio
