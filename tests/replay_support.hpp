// tests/replay_support.hpp — the reading loop that tests/stream_replay.cpp and
// tests/sync_replay.cpp share: scripts come on stdin a line at a time, each ending with "end";
// every other line goes to the driver's parser, and at "end" the driver replays the script on a
// fresh loop. The transcripts go to stdout, each followed by "==", for tests/replay_diff.py to
// compare with CPython's; an exception that escapes a replay becomes that script's last line,
// so a crash of one script shows as a difference, not as a lost run.
#pragma once

#include <fmt/core.h>

#include <exception>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

namespace gilio::testing {

// A transcript's lines as its text, each ending with a newline.
inline std::string transcript(const std::vector<std::string>& lines) {
  std::string text;
  for (const std::string& line : lines)
    text += line + "\n";
  return text;
}

// parse(head, words) for each line but "end" (head: its first word; words: the rest);
// replay() at each "end", returning the transcript and starting the next script afresh.
template <class Parse, class Replay>
int replay_scripts(const char* name, Parse parse, Replay replay) {
  std::string line, all;
  int scripts = 0;
  while (std::getline(std::cin, line)) {
    std::istringstream words(line);
    std::string head;
    words >> head;
    if (head != "end") {
      parse(head, words);
      continue;
    }
    try {
      all += replay();
    } catch (const std::exception& e) {
      all += fmt::format("script failed: {}\n", e.what());
    }
    all += "==\n";
    ++scripts;
  }
  std::cout << all;
  std::cerr << fmt::format("{}: {} scripts replayed\n", name, scripts);
  return 0;
}

}  // namespace gilio::testing
