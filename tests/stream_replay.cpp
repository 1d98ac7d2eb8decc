// tests/stream_replay.cpp — replays scripted StreamReader sessions and prints what each read
// gave, for tests/stream_diff.py to compare, line for line, with what CPython's own
// asyncio.StreamReader gives for the same script.
//
// The unit tests pin the edge cases someone thought of; this one asks CPython. A script is a
// reader's limit, the bytes a feeder task hands to feed_data() in pieces — yielding to the loop
// after each piece, so a waiting read sees every piece before the next one comes — then
// feed_eof(), and the reads a reader task makes meanwhile: read(n), readline(), readexactly(n),
// readuntil(sep), at_eof(). Both sides run the same two tasks, so a difference in the
// transcripts is a difference in the reads: a byte too many, an error where asyncio returns, a
// limit counted one off, bytes left behind after an error.
//
// Input (stdin), one script after another, each ending with "end":
//     limit 8
//     feed 610a62        (hex; "feed" alone is an empty piece)
//     op readuntil 0a    (or: read N, readline, readexactly N, at_eof)
//     end
// Output: a line per op, its result ("ok <hex>", "IncompleteReadError <hex partial> <expected>",
// "LimitOverrunError <consumed>", "ValueError", "true"/"false"), then "at_eof true|false" and
// "==" after each script.
#include <fmt/core.h>

#include <gilio/asyncio.hpp>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "replay_support.hpp"

namespace asyncio = gilio::asyncio;

namespace {

struct Script {
  std::size_t limit = asyncio::kDefaultStreamLimit;
  std::vector<std::string> pieces;
  std::vector<std::vector<std::string>> ops;  // each: its words
};

std::string from_hex(const std::string& hex) {
  std::string out;
  for (std::size_t i = 0; i + 1 < hex.size(); i += 2)
    out.push_back(static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
  return out;
}

std::string to_hex(const std::string& bytes) {
  std::string out;
  for (const unsigned char c : bytes)
    out += fmt::format("{:02x}", c);
  return out;
}

asyncio::Coro<std::string> one_read(asyncio::StreamReader& r, const std::vector<std::string>& op) {
  const std::string& name = op[0];
  if (name == "read") co_return co_await r.read(std::stol(op[1]));
  if (name == "readline") co_return co_await r.readline();
  if (name == "readexactly") co_return co_await r.readexactly(std::stoul(op[1]));
  if (name == "readuntil") {
    std::string sep = from_hex(op.size() > 1 ? op[1] : "");  // named: g++ 12 mishandles some
    co_return co_await r.readuntil(std::move(sep));          // temporaries inside co_await
  }
  throw std::logic_error("stream_replay: unknown op " + name);
}

asyncio::Coro<void> reader_task(asyncio::StreamReader r, const Script& s, std::string& out) {
  for (const std::vector<std::string>& op : s.ops) {
    if (op[0] == "at_eof") {
      out += r.at_eof() ? "true\n" : "false\n";
      continue;
    }
    try {
      std::string got = co_await one_read(r, op);
      out += "ok " + to_hex(got) + "\n";
    } catch (const asyncio::IncompleteReadError& e) {
      out += fmt::format("IncompleteReadError {} {}\n", to_hex(e.partial),
                         e.expected == std::string::npos ? "None" : std::to_string(e.expected));
    } catch (const asyncio::LimitOverrunError& e) {
      out += fmt::format("LimitOverrunError {}\n", e.consumed);
    } catch (const std::invalid_argument&) {  // asyncio's ValueError
      out += "ValueError\n";
    }
  }
  out += fmt::format("at_eof {}\n", r.at_eof() ? "true" : "false");
}

asyncio::Coro<void> feeder_task(asyncio::StreamReader r, const Script& s) {
  for (const std::string& piece : s.pieces) {
    r.feed_data(piece);
    co_await asyncio::sleep(0);
  }
  r.feed_eof();
}

asyncio::Coro<std::string> replay(Script s) {
  asyncio::StreamReader r = asyncio::StreamReader::fed(s.limit);
  std::string out;
  asyncio::Task<void> reading = asyncio::create_task(reader_task(r, s, out));
  asyncio::Task<void> feeding = asyncio::create_task(feeder_task(r, s));
  // Bounded: a read that never returns fails the comparison instead of hanging it.
  co_await asyncio::wait_for(asyncio::gather(reading, feeding), 10.0);
  co_return out;
}

}  // namespace

int main() {
  Script s;
  return gilio::testing::replay_scripts(
      "stream_replay",
      [&](const std::string& head, std::istringstream& words) {
        if (head == "limit") {
          words >> s.limit;
        } else if (head == "feed") {
          std::string hex;
          words >> hex;
          s.pieces.push_back(from_hex(hex));
        } else if (head == "op") {
          std::vector<std::string> op;
          for (std::string w; words >> w;)
            op.push_back(w);
          s.ops.push_back(op);
        }
      },
      [&] { return asyncio::run(replay(std::exchange(s, Script{}))); });
}
