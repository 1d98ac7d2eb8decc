// examples/subprocess_protocol.cpp — a child process heard through a protocol instead of
// awaited through streams: asyncio's loop.subprocess_exec with a SubprocessProtocol.
//
// The Python program it mirrors:
//
//     import asyncio
//     class LineCounter(asyncio.SubprocessProtocol):
//         def __init__(self, finished):
//             self.finished, self.lines, self.pieces = finished, 0, 0
//         def connection_made(self, transport):
//             self.transport = transport
//         def pipe_data_received(self, fd, data):
//             self.pieces += 1
//             self.lines += data.count(b"\n")
//         def pipe_connection_lost(self, fd, exc):
//             print(f"pipe {fd} closed")
//         def process_exited(self):
//             print(f"process exited with {self.transport.get_returncode()}")
//         def connection_lost(self, exc):
//             print(f"{self.lines} lines in {self.pieces} pieces")
//             self.finished.set_result(None)
//     async def main():
//         finished = asyncio.get_running_loop().create_future()
//         transport, protocol = await asyncio.get_running_loop().subprocess_exec(
//             lambda: LineCounter(finished), "seq", "100000", stdin=None, stderr=None)
//         await finished
//         transport.close()
//     asyncio.run(main())
//
// No coroutine reads the pipe: the transport's own task reads it and calls the protocol with each
// piece as it comes (how the 588,895 bytes are cut is the pipe's choice), and the protocol counts
// as it goes. "pipe 1 closed" and "process exited" may come in either order — the child's end and
// its pipe's EOF are two events — but connection_lost always comes last, once both have.
#include <fmt/core.h>

#include <algorithm>
#include <exception>
#include <gilio/asyncio.hpp>
#include <memory>
#include <string>
#include <vector>

namespace asyncio = gilio::asyncio;

class LineCounter : public asyncio::SubprocessProtocol {
 public:
  explicit LineCounter(asyncio::Future<void> finished) : finished_(std::move(finished)) {}
  void connection_made(asyncio::SubprocessTransport& transport) override { transport_ = transport; }
  void pipe_data_received(int, std::string data) override {
    ++pieces_;
    lines_ += std::count(data.begin(), data.end(), '\n');
  }
  void pipe_connection_lost(int fd, std::exception_ptr) override {
    fmt::print("pipe {} closed\n", fd);
  }
  void process_exited() override {
    fmt::print("process exited with {}\n", *transport_.get_returncode());
  }
  void connection_lost(std::exception_ptr) override {
    fmt::print("{} lines in {} pieces\n", lines_, pieces_);
    finished_.set_result();
  }

 private:
  asyncio::Future<void> finished_;
  asyncio::SubprocessTransport transport_;
  long lines_ = 0;
  int pieces_ = 0;
};

asyncio::Coro<> main_coro() {
  asyncio::Future<void> finished = asyncio::get_running_loop().create_future<void>();
  auto factory = [finished] { return std::make_shared<LineCounter>(finished); };
  asyncio::subprocess::Options opts;  // stdin and stderr inherited, as stdin=None, stderr=None
  opts.stdout_ = asyncio::subprocess::PIPE;
  std::vector<std::string> argv{"seq", "100000"};
  auto [transport, protocol] = co_await asyncio::subprocess_exec(factory, argv, opts);
  co_await finished;
  transport.close();
}

int main() {
  asyncio::run(main_coro());
}
