// examples/request_ids.cpp — a context variable: each request's id reaches the logger without
// being passed down, although one thread serves every request at once.
//
// The Python program it mirrors:
//
//     import asyncio, contextvars
//     request_id = contextvars.ContextVar("request_id", default="-")
//
//     def log_line(message):
//         print(f"[{request_id.get()}] {message}")
//
//     async def query(table):
//         log_line(f"querying {table}")
//         await asyncio.sleep(0.01)
//         log_line(f"{table} answered")
//
//     async def handle(rid, tables):
//         request_id.set(rid)
//         log_line("start")
//         await asyncio.gather(*(query(t) for t in tables))  # each query task copies it
//         await asyncio.to_thread(log_line, "audit record written")  # so does to_thread
//         log_line("done")
//
//     async def main():
//         await asyncio.gather(handle("req-1", ["users"]), handle("req-2", ["orders", "stock"]))
//         log_line("all requests served")  # main never set it: "-"
//
//     asyncio.run(main())
//
// The lines of the two requests interleave, each tagged with its own id: every task runs in a
// copy of the context of the code that created it (gilio/contextvars.hpp says how), so what
// handle() sets is seen by its own queries and by the thread its to_thread call runs on, and by
// no other request. A thread_local could not do this: all of it runs on one thread.
#include <fmt/core.h>

#include <gilio/asyncio.hpp>
#include <string>
#include <vector>

namespace asyncio = gilio::asyncio;
namespace contextvars = gilio::contextvars;

contextvars::ContextVar<std::string> request_id("request_id", "-");

void log_line(const std::string& message) {
  fmt::print("[{}] {}\n", request_id.get(), message);
}

asyncio::Coro<> query(std::string table) {
  log_line("querying " + table);
  co_await asyncio::sleep(0.01);
  log_line(table + " answered");
}

asyncio::Coro<> handle(std::string rid, std::vector<std::string> tables) {
  request_id.set(rid);
  log_line("start");
  std::vector<asyncio::Task<>> queries;
  for (const auto& t : tables)
    queries.push_back(asyncio::create_task(query(t)));
  co_await asyncio::gather(std::move(queries));
  co_await asyncio::to_thread(log_line, std::string("audit record written"));
  log_line("done");
}

asyncio::Coro<> main_coro() {
  // Named first: g++ 12 cannot compile a braced list inside a co_await expression.
  auto first = handle("req-1", {"users"});
  auto second = handle("req-2", {"orders", "stock"});
  co_await asyncio::gather(std::move(first), std::move(second));
  log_line("all requests served");
}

int main() {
  asyncio::run(main_coro());
}
