// tests/test_subprocess.cpp — create_subprocess_exec, create_subprocess_shell and Process
// (runtime/subprocess.cpp), after the ideas of Lib/test/test_asyncio/test_subprocess.py: real
// children (sh, cat, sleep) with their streams piped, merged, sent to /dev/null or to a
// descriptor; exit codes and signals; communicate() with more data than a pipe holds each way;
// a child that stops reading its stdin (an error, never SIGPIPE); cancelled waits and reads;
// children whose handles were dropped, or still running when the loop closes, reaped all the
// same; and the errors a caller can act on.
#include <fcntl.h>
#include <fmt/core.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "asyncio_support.hpp"
#include "support.hpp"

namespace asyncio = gilio::asyncio;
namespace sp = gilio::asyncio::subprocess;
using asyncio::Coro;
using asyncio::Process;
using gilio::testing::run_test;
using gilio::testing::spin_until;

namespace {

sp::Options piped(bool in, bool out, bool err = false) {
  sp::Options o;
  if (in) o.stdin_ = sp::PIPE;
  if (out) o.stdout_ = sp::PIPE;
  if (err) o.stderr_ = sp::PIPE;
  return o;
}

Coro<Process> sh(std::string script, sp::Options o) {
  std::vector<std::string> argv{"/bin/sh", "-c", std::move(script)};
  co_return co_await asyncio::create_subprocess_exec(argv, o);
}

// Has `pid` been reaped (by anyone)? Asked without reaping it (WNOWAIT).
bool reaped(pid_t pid) {
  siginfo_t info{};
  return ::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG | WNOWAIT) < 0 &&
         errno == ECHILD;
}

std::string pattern(std::size_t n) {
  std::string s(n, '\0');
  for (std::size_t i = 0; i < n; ++i)
    s[i] = static_cast<char>('a' + (i * 7 + i / 4096) % 26);
  return s;
}

}  // namespace

TEST(Subprocess, ExecReadsStdoutLineByLineAndGivesTheExitCode) {
  run_test([]() -> Coro<void> {
    Process p = co_await sh("echo one; echo two; exit 3", piped(false, true));
    EXPECT_GT(p.pid(), 0);
    EXPECT_EQ(co_await p.stdout_().readline(), "one\n");
    EXPECT_EQ(co_await p.stdout_().readline(), "two\n");
    EXPECT_EQ(co_await p.stdout_().readline(), "");  // EOF
    EXPECT_TRUE(p.stdout_().at_eof());
    EXPECT_EQ(co_await p.wait(), 3);
    EXPECT_EQ(p.returncode(), 3);
    EXPECT_EQ(co_await p.wait(), 3);  // again: at once
  }());
}

TEST(Subprocess, ShellRunsItsCommandThroughSh) {
  run_test([]() -> Coro<void> {
    Process p = co_await asyncio::create_subprocess_shell("echo $((6 * 7))", piped(false, true));
    auto [out, err] = co_await p.communicate();
    EXPECT_EQ(out, "42\n");
    EXPECT_EQ(err, "");
    EXPECT_EQ(p.returncode(), 0);
  }());
}

// 4 MiB through cat and back: far more than a pipe or socket buffer holds either way, so
// communicate() must feed stdin and read stdout at the same time or it deadlocks.
TEST(Subprocess, CommunicateRoundTripsMoreThanAPipeHolds) {
  run_test([]() -> Coro<void> {
    std::vector<std::string> argv{"cat"};
    Process p = co_await asyncio::create_subprocess_exec(argv, piped(true, true));
    const std::string data = pattern(4 << 20);
    auto [out, err] = co_await p.communicate(data);
    EXPECT_EQ(out.size(), data.size());
    EXPECT_TRUE(out == data) << "the bytes came back changed or out of order";
    EXPECT_EQ(p.returncode(), 0);
  }());
}

TEST(Subprocess, StderrIsSeparateOrMergedIntoStdout) {
  run_test([]() -> Coro<void> {
    const std::string script = "echo out; echo err >&2; echo out2";
    Process apart = co_await sh(script, piped(false, true, true));
    auto [out, err] = co_await apart.communicate();
    EXPECT_EQ(out, "out\nout2\n");
    EXPECT_EQ(err, "err\n");

    sp::Options merged = piped(false, true);
    merged.stderr_ = sp::STDOUT;
    Process both = co_await sh(script, merged);
    auto [all, none] = co_await both.communicate();
    EXPECT_EQ(all, "out\nerr\nout2\n");
    EXPECT_EQ(none, "");
  }());
}

TEST(Subprocess, DevnullAndACallersDescriptor) {
  int fds[2];
  ASSERT_EQ(::pipe2(fds, O_CLOEXEC), 0);
  run_test([&fds]() -> Coro<void> {
    sp::Options quiet;
    quiet.stdin_ = sp::DEVNULL;
    quiet.stdout_ = sp::DEVNULL;
    quiet.stderr_ = sp::PIPE;
    // cat reads /dev/null (EOF at once) and its output goes nowhere.
    Process p = co_await sh("cat; echo gone; echo kept >&2", quiet);
    auto [out, err] = co_await p.communicate();
    EXPECT_EQ(out, "");
    EXPECT_EQ(err, "kept\n");
    EXPECT_EQ(p.returncode(), 0);

    sp::Options to_fd;
    to_fd.stdout_ = fds[1];  // the caller's pipe: its end stays the caller's
    Process q = co_await sh("echo via-fd", to_fd);
    EXPECT_EQ(co_await q.wait(), 0);
  }());
  ::close(fds[1]);
  char buf[64] = {};
  EXPECT_EQ(::read(fds[0], buf, sizeof buf), 7);
  EXPECT_EQ(std::string(buf, 7), "via-fd\n");
  ::close(fds[0]);
}

// The design in subprocess.hpp: stdout and stderr are real pipes; stdin is a socket.
TEST(Subprocess, TheChildsStdoutIsAPipeAndItsStdinASocket) {
  run_test([]() -> Coro<void> {
    Process p = co_await sh(
        "[ -p /dev/stdout ] && echo pipe; [ -p /dev/stderr ] && echo pipe2; "
        "[ -S /dev/stdin ] && echo socket",
        piped(true, true, true));
    auto [out, err] = co_await p.communicate();
    EXPECT_EQ(out, "pipe\npipe2\nsocket\n");
    EXPECT_EQ(err, "");
  }());
}

// An interactive child: a line written, a line read, a hundred times; then EOF both ways.
TEST(Subprocess, TalkToCatLineByLine) {
  run_test([]() -> Coro<void> {
    std::vector<std::string> argv{"cat"};
    Process p = co_await asyncio::create_subprocess_exec(argv, piped(true, true));
    for (int i = 0; i < 100; ++i) {
      const std::string line = "line " + std::to_string(i) + "\n";
      p.stdin_().write(line);
      co_await p.stdin_().drain();
      EXPECT_EQ(co_await p.stdout_().readline(), line);
    }
    p.stdin_().close();
    co_await p.stdin_().wait_closed();
    EXPECT_EQ(co_await p.stdout_().read(), "");
    EXPECT_EQ(co_await p.wait(), 0);
  }());
}

TEST(Subprocess, SignalsEndTheChildAndShowInReturncode) {
  run_test([]() -> Coro<void> {
    std::vector<std::string> argv{"sleep", "30"};
    Process a = co_await asyncio::create_subprocess_exec(argv);
    Process b = co_await asyncio::create_subprocess_exec(argv);
    Process c = co_await asyncio::create_subprocess_exec(argv);
    EXPECT_EQ(a.returncode(), std::nullopt);
    try {
      a.send_signal(100000);
      ADD_FAILURE() << "a signal that does not exist was sent";
    } catch (const asyncio::OSError& e) {
      EXPECT_EQ(e.code().value(), EINVAL);
      EXPECT_NE(std::string(e.what()).find(std::to_string(a.pid())), std::string::npos);
    }
    a.kill();
    b.terminate();
    c.send_signal(SIGINT);
    EXPECT_EQ(co_await a.wait(), -SIGKILL);
    EXPECT_EQ(co_await b.wait(), -SIGTERM);
    EXPECT_EQ(co_await c.wait(), -SIGINT);
    a.kill();  // reaped: nothing to signal, and no error (Popen.send_signal)
    EXPECT_EQ(a.returncode(), -SIGKILL);
  }());
}

TEST(Subprocess, ErrorsNameWhatIsWrong) {
  run_test([]() -> Coro<void> {
    std::vector<std::string> missing{"/nonexistent/gilio-program"};
    co_await gilio::testing::expect_await_throws<asyncio::FileNotFoundError>(
        asyncio::create_subprocess_exec(missing), "a missing program ran",
        "cannot run '/nonexistent/gilio-program'");
    std::vector<std::string> not_on_path{"gilio-no-such-program"};
    co_await gilio::testing::expect_await_throws<asyncio::FileNotFoundError>(
        asyncio::create_subprocess_exec(not_on_path), "a program not on PATH ran",
        "gilio-no-such-program");
    // A text file: without execute permission (PermissionError), then with it but in no format
    // the kernel runs (ENOEXEC: posix_spawnp does not try /bin/sh, as execvp once did).
    char path[] = "/tmp/gilio-not-a-program-XXXXXX";
    const int fd = ::mkstemp(path);
    EXPECT_GE(fd, 0);
    EXPECT_EQ(::write(fd, "not a program\n", 14), 14);
    ::close(fd);
    std::vector<std::string> text{path};
    ::chmod(path, 0644);
    co_await gilio::testing::expect_await_throws<asyncio::PermissionError>(
        asyncio::create_subprocess_exec(text), "a file without execute permission ran", path);
    ::chmod(path, 0755);
    try {
      co_await asyncio::create_subprocess_exec(text);
      ADD_FAILURE() << "a text file ran";
    } catch (const asyncio::OSError& e) {
      EXPECT_EQ(e.code().value(), ENOEXEC) << e.what();
    }
    ::unlink(path);

    std::vector<std::string> ls{"ls"};
    sp::Options bad_cwd;
    bad_cwd.cwd = "/nonexistent-gilio-dir";
    co_await gilio::testing::expect_await_throws<asyncio::FileNotFoundError>(
        asyncio::create_subprocess_exec(ls, bad_cwd), "ran in a missing directory",
        "cwd /nonexistent-gilio-dir");
    std::vector<std::string> empty;
    co_await gilio::testing::expect_await_throws<std::invalid_argument>(
        asyncio::create_subprocess_exec(empty), "an empty argv ran", "no program");
    sp::Options stdout_to_stdout;
    stdout_to_stdout.stdout_ = sp::STDOUT;
    co_await gilio::testing::expect_await_throws<std::invalid_argument>(
        asyncio::create_subprocess_exec(ls, stdout_to_stdout), "stdout_ = STDOUT was taken",
        "STDOUT is for stderr_ only");
    sp::Options closed_fd;
    closed_fd.stdout_ = 1000;
    co_await gilio::testing::expect_await_throws<asyncio::OSError>(
        asyncio::create_subprocess_exec(ls, closed_fd), "a closed descriptor was taken",
        "stdout_ = 1000");
    sp::Options bad_env;
    bad_env.env = std::vector<std::string>{"JUSTANAME"};
    co_await gilio::testing::expect_await_throws<std::invalid_argument>(
        asyncio::create_subprocess_exec(ls, bad_env), "an env entry without '=' was taken",
        "NAME=value");
    std::vector<std::string> nul{"echo", std::string("a\0b", 3)};
    co_await gilio::testing::expect_await_throws<std::invalid_argument>(
        asyncio::create_subprocess_exec(nul), "an argument with a NUL was taken", "NUL");

    // A stream that is not a pipe, and input for a stdin that is not one.
    const sp::Options inherit;  // named: g++ 12 frees a braced temporary in co_await twice
    Process p = co_await sh("exit 0", inherit);
    EXPECT_THROW(p.stdout_(), std::runtime_error);
    EXPECT_THROW(p.stdin_(), std::runtime_error);
    EXPECT_THROW((void)p.communicate("input"), std::invalid_argument);
    EXPECT_EQ(co_await p.wait(), 0);
    Process none;
    EXPECT_THROW((void)none.pid(), std::runtime_error);
  }());
}

TEST(Subprocess, CwdEnvironmentAndANewSession) {
  run_test([]() -> Coro<void> {
    sp::Options o = piped(false, true);
    o.cwd = "/tmp";
    o.env = std::vector<std::string>{"GILIO_X=forty two", "PATH=/usr/bin:/bin"};
    o.start_new_session = true;
    // Field 6 of /proc/PID/stat is the session id; sh's name there holds no spaces.
    Process p = co_await sh(
        "pwd; echo \"$GILIO_X\"; echo \"${HOME-unset}\"; "
        "cut -d' ' -f6 /proc/$$/stat",
        o);
    auto [out, err] = co_await p.communicate();
    EXPECT_EQ(out, "/tmp\nforty two\nunset\n" + std::to_string(p.pid()) + "\n");
  }());
}

// close_fds (the default) closes every descriptor above 2 in the child, CLOEXEC or not.
TEST(Subprocess, CloseFdsClosesInheritableDescriptors) {
  const int fd = ::open("/dev/null", O_RDONLY);  // no O_CLOEXEC: inheritable
  ASSERT_GE(fd, 3);
  run_test([fd]() -> Coro<void> {
    const std::string script =
        "[ -e /proc/self/fd/" + std::to_string(fd) + " ] && echo open || echo closed";
    Process closing = co_await sh(script, piped(false, true));
    EXPECT_EQ((co_await closing.communicate()).first, "closed\n");
    sp::Options keep = piped(false, true);
    keep.close_fds = false;
    Process keeping = co_await sh(script, keep);
    EXPECT_EQ((co_await keeping.communicate()).first, "open\n");
  }());
  ::close(fd);
}

// A child that exits without reading its stdin: writing then is BrokenPipeError or
// ConnectionResetError — the parent is not killed by SIGPIPE — and communicate() shrugs it off.
TEST(Subprocess, AChildThatStopsReadingIsAnErrorNotSigpipe) {
  run_test([]() -> Coro<void> {
    Process p = co_await sh("exit 5", piped(true, false));
    EXPECT_EQ(co_await p.wait(), 5);
    const std::string big = pattern(1 << 20);
    try {
      p.stdin_().write(big);
      co_await p.stdin_().drain();
      p.stdin_().write(big);  // the first error may come with the second write
      co_await p.stdin_().drain();
      ADD_FAILURE() << "2 MiB were written to a child that has exited";
    } catch (const asyncio::ConnectionError& e) {
      EXPECT_TRUE(e.code().value() == EPIPE || e.code().value() == ECONNRESET) << e.what();
      EXPECT_NE(std::string(e.what()).find("stdin of process " + std::to_string(p.pid())),
                std::string::npos)
          << e.what();
    }
    Process q = co_await sh("read line; echo \"$line\"", piped(true, true));
    auto [out, err] = co_await q.communicate("first\n" + big);
    EXPECT_EQ(out, "first\n");
    EXPECT_EQ(q.returncode(), 0);
  }());
}

// Two tasks wait for the same child; a third wait times out (cancelled) without disturbing
// them. cat ends only when its stdin closes, so nothing here depends on timing.
TEST(Subprocess, ManyWaitersAndACancelledWait) {
  run_test([]() -> Coro<void> {
    std::vector<std::string> argv{"cat"};
    Process p = co_await asyncio::create_subprocess_exec(argv, piped(true, false));
    auto w1 = asyncio::create_task(p.wait());
    auto w2 = asyncio::create_task(p.wait());
    co_await gilio::testing::expect_await_throws<asyncio::TimeoutError>(
        asyncio::wait_for(p.wait(), 0.05), "cat ended with its stdin open");
    EXPECT_FALSE(w1.done());
    EXPECT_EQ(p.returncode(), std::nullopt);
    p.stdin_().close();
    EXPECT_EQ(co_await w1, 0);
    EXPECT_EQ(co_await w2, 0);
  }());
}

// A read of the child's stdout cancelled while it waits in the ring: the read is cancelled in
// the kernel, and the next read gets the next line whole.
TEST(Subprocess, ACancelledReadOfStdoutLosesNothing) {
  run_test([]() -> Coro<void> {
    std::vector<std::string> argv{"cat"};
    Process p = co_await asyncio::create_subprocess_exec(argv, piped(true, true));
    for (int i = 0; i < 50; ++i) {
      auto reading = asyncio::create_task(Coro<std::string>(p.stdout_().readline()));
      co_await asyncio::sleep(0);
      co_await asyncio::sleep(0);
      EXPECT_TRUE(reading.cancel());
      co_await gilio::testing::expect_await_throws<asyncio::CancelledError>(
          reading, "a cancelled read finished");
      p.stdin_().write("after " + std::to_string(i) + "\n");
      EXPECT_EQ(co_await p.stdout_().readline(), "after " + std::to_string(i) + "\n");
    }
    p.stdin_().close();
    EXPECT_EQ(co_await p.wait(), 0);
  }());
}

TEST(Subprocess, FiftyChildrenAtOnce) {
  run_test([]() -> Coro<void> {
    std::vector<asyncio::Task<int>> runs;
    for (int i = 0; i < 50; ++i) {
      runs.push_back(asyncio::create_task([](int code) -> Coro<int> {
        Process p = co_await sh("echo " + std::to_string(code) + "; exit " + std::to_string(code),
                                piped(false, true));
        auto [out, err] = co_await p.communicate();
        EXPECT_EQ(out, std::to_string(code) + "\n");
        co_return *p.returncode();
      }(i)));
    }
    const std::vector<int> codes = co_await asyncio::gather(std::move(runs));
    for (int i = 0; i < 50; ++i)
      EXPECT_EQ(codes[static_cast<std::size_t>(i)], i);
  }());
}

// A Process dropped while its child runs: the child runs on, and the loop reaps it when it
// ends, as asyncio's child watcher does. No zombie stays.
TEST(Subprocess, ADroppedProcessIsStillReaped) {
  pid_t pid = 0;
  run_test([&pid]() -> Coro<void> {
    {
      Process p = co_await sh("read x; exit 0", piped(true, false));
      pid = p.pid();
      p.stdin_().write("go\n");
      p.stdin_().close();
    }  // dropped: the child may still be running
    for (int i = 0; i < 1000 && !reaped(pid); ++i)
      co_await asyncio::sleep(0.01);
    EXPECT_TRUE(reaped(pid)) << "the dropped child " << pid << " was not reaped";
  }());
}

// A loop that closes while a child runs kills it and reaps it: no zombie, no orphan.
TEST(Subprocess, ClosingTheLoopKillsAndReapsARunningChild) {
  Process kept;
  asyncio::run([&kept]() -> Coro<void> {
    std::vector<std::string> argv{"sleep", "60"};
    kept = co_await asyncio::create_subprocess_exec(argv);
  }());
  EXPECT_EQ(kept.returncode(), -SIGKILL);
  EXPECT_TRUE(reaped(kept.pid()));
  kept.kill();  // reaped: no error, no signal to whoever has the pid now
}

TEST(Subprocess, AProcessIsWaitedForOnlyOnTheLoopThatStartedIt) {
  // Its exit is heard through the loop that started it: a task of another loop would wait
  // forever (or be woken from that loop's thread), so it gets std::runtime_error instead.
  asyncio::EventLoop a;
  asyncio::EventLoop b;
  std::optional<Process> p;
  a.run_until_complete(asyncio::wait_for(
      [](std::optional<Process>& p) -> Coro<void> {
        std::vector<std::string> argv{"cat"};  // named: g++ 12 rejects a braced list in co_await
        p = co_await asyncio::create_subprocess_exec(argv, piped(true, true));
      }(p),
      20.0));
  b.run_until_complete(asyncio::wait_for(
      [](Process& p) -> Coro<void> {
        co_await gilio::testing::expect_await_throws<std::runtime_error>(
            p.wait(), "waited for a process of another loop",
            "Process.wait: the process belongs to a different event loop");
        auto talk = p.communicate(std::string("x"));
        co_await gilio::testing::expect_await_throws<std::runtime_error>(
            talk, "talked to a process of another loop", "different event loop");
      }(*p),
      20.0));
  const auto [out, err] =
      a.run_until_complete(asyncio::wait_for(p->communicate("on its own loop"), 20.0));
  EXPECT_EQ(out, "on its own loop");
  EXPECT_EQ(p->returncode(), 0);
  // An exit already heard is anyone's to read.
  EXPECT_EQ(b.run_until_complete(p->wait()), 0);
}

namespace {
// What `sh` says about descriptor `fd`: "open" or "closed".
std::string open_or_closed(int fd) {
  return fmt::format("test -e /proc/self/fd/{} && echo open || echo closed", fd);
}

Coro<std::string> run_script(std::string script, sp::Options o) {
  Process p = co_await sh(std::move(script), o);
  auto [out, err] = co_await p.communicate();
  EXPECT_EQ(co_await p.wait(), 0);
  co_return out;
}
}  // namespace

TEST(Subprocess, PassFdsKeepsTheGivenDescriptorsAndClosesTheRest) {
  // Inheritable pipes below and above the passed one: close_fds is what keeps them from the
  // child, the low one closed in the gap under the passed descriptor, the high one above it.
  int low[2];
  int kept[2];
  int high[2];
  ASSERT_EQ(::pipe(low), 0);
  ASSERT_EQ(::pipe2(kept, O_CLOEXEC), 0);
  ASSERT_EQ(::pipe(high), 0);
  ASSERT_LT(low[1], kept[1]);
  ASSERT_GT(high[1], kept[1]);
  const std::string script = fmt::format("echo passed > /proc/self/fd/{}; {}; {}", kept[1],
                                         open_or_closed(low[1]), open_or_closed(high[1]));
  sp::Options o = piped(false, true);
  o.pass_fds = {kept[1]};
  EXPECT_EQ(run_test(run_script(script, o)), "closed\nclosed\n");
  char buf[64];
  const ssize_t n = ::read(kept[0], buf, sizeof buf);  // written before the child exited
  EXPECT_EQ(std::string(buf, static_cast<std::size_t>(std::max<ssize_t>(n, 0))), "passed\n");
  EXPECT_NE(::fcntl(kept[1], F_GETFD) & FD_CLOEXEC, 0);  // still close-on-exec here

  o.close_fds = false;  // the checks above can fail: without close_fds the others go along
  EXPECT_EQ(run_test(run_script(open_or_closed(low[1]) + ";" + open_or_closed(high[1]), o)),
            "open\nopen\n");
  o.close_fds = true;
  o.pass_fds = {};  // nor is a close-on-exec descriptor kept unless passed
  EXPECT_EQ(run_test(run_script(open_or_closed(kept[1]), o)), "closed\n");
  for (int fd : {low[0], low[1], kept[0], kept[1], high[0], high[1]})
    ::close(fd);
}

// The gap under a passed descriptor is closed number by number without asking which are open
// (which would race with other threads): numbers nobody holds must not fail the spawn.
TEST(Subprocess, PassFdsAboveAGapOfUnusedNumbers) {
  int kept[2];
  ASSERT_EQ(::pipe2(kept, O_CLOEXEC), 0);
  const int high = ::fcntl(kept[1], F_DUPFD_CLOEXEC, 300);  // the lowest free number from 300
  ASSERT_GE(high, 300);
  sp::Options o = piped(false, true);
  o.pass_fds = {high};
  EXPECT_EQ(run_test(run_script(fmt::format("echo passed > /proc/self/fd/{}; echo ran", high), o)),
            "ran\n");
  char buf[64];
  const ssize_t n = ::read(kept[0], buf, sizeof buf);
  EXPECT_EQ(std::string(buf, static_cast<std::size_t>(std::max<ssize_t>(n, 0))), "passed\n");
  for (int fd : {kept[0], kept[1], high})
    ::close(fd);
}

TEST(Subprocess, PassFdsRefusesADescriptorThatIsNotOpen) {
  run_test([]() -> Coro<void> {
    sp::Options o;
    o.pass_fds = {-1};
    auto bad = sh("true", o);
    co_await gilio::testing::expect_await_throws<std::invalid_argument>(
        bad, "passed -1", "pass_fds: -1 is no descriptor");
    const int fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    ::close(fd);  // a number nobody holds now
    o.pass_fds = {fd};
    auto closed = sh("true", o);
    co_await gilio::testing::expect_await_throws<std::system_error>(
        closed, "passed a closed descriptor", fmt::format("pass_fds: descriptor {}", fd));
  }());
}

// ---- subprocess_exec and subprocess_shell: the protocol side (loop.subprocess_exec) ----

namespace {

// Records what a SubprocessProtocol is told, in order; `done` is set by connection_lost.
struct Recorder : asyncio::SubprocessProtocol {
  std::vector<std::string> events;
  std::string data[3];
  std::exception_ptr pipe_error[3];
  bool pipe_lost[3] = {false, false, false};
  bool data_after_lost = false;
  std::optional<int> returncode_at_exit;
  int paused = 0;
  int resumed = 0;
  asyncio::Event resumed_event;
  asyncio::Event done;
  asyncio::SubprocessTransport transport;  // a cycle until connection_lost, as in asyncio

  void connection_made(asyncio::SubprocessTransport& t) override {
    transport = t;
    events.push_back("made");
  }
  void pipe_data_received(int fd, std::string bytes) override {
    if (pipe_lost[fd]) data_after_lost = true;
    data[fd] += bytes;
  }
  void pipe_connection_lost(int fd, std::exception_ptr e) override {
    events.push_back(fmt::format("pipe {} lost", fd));
    pipe_lost[fd] = true;
    pipe_error[fd] = e;
  }
  void process_exited() override {
    events.push_back("exited");
    returncode_at_exit = transport.get_returncode();
  }
  void connection_lost(std::exception_ptr e) override {
    events.push_back(e ? "lost with an error" : "lost");
    done.set();
  }
  void pause_writing() override { ++paused; }
  void resume_writing() override {
    ++resumed;
    resumed_event.set();
  }
};

std::shared_ptr<Recorder> make_recorder() {
  return std::make_shared<Recorder>();
}

Coro<std::shared_ptr<Recorder>> sh_protocol(std::string script, sp::Options o) {
  auto started = co_await asyncio::subprocess_shell(make_recorder, std::move(script), o);
  co_return started.second;
}

// connection_made first, connection_lost last and once, everything else in between.
void expect_whole_story(const Recorder& r, std::vector<std::string> middle) {
  ASSERT_GE(r.events.size(), 2u);
  EXPECT_EQ(r.events.front(), "made");
  EXPECT_EQ(r.events.back(), "lost");
  std::vector<std::string> seen(r.events.begin() + 1, r.events.end() - 1);
  std::sort(seen.begin(), seen.end());
  std::sort(middle.begin(), middle.end());
  EXPECT_EQ(seen, middle);
  EXPECT_FALSE(r.data_after_lost) << "pipe_data_received after that pipe's pipe_connection_lost";
}

}  // namespace

// The whole of a child's life through the protocol: stdin written and closed through its pipe
// transport, stdout and stderr delivered per fd, each pipe's end, the exit, and connection_lost
// only after all of them (asyncio's _try_finish).
TEST(SubprocessProtocol, HearsEachPipeTheExitAndThenConnectionLost) {
  run_test([]() -> Coro<void> {
    std::vector<std::string> argv{"/bin/sh", "-c", "cat; echo oops >&2; exit 3"};
    auto [transport, r] = co_await asyncio::subprocess_exec(make_recorder, argv);
    EXPECT_EQ(r->events, std::vector<std::string>{"made"});  // before subprocess_exec returned
    EXPECT_GT(transport.get_pid(), 0);
    EXPECT_FALSE(transport.get_returncode());
    std::optional<asyncio::Transport> in = transport.get_pipe_transport(0);
    EXPECT_TRUE(in && transport.get_pipe_transport(1) && transport.get_pipe_transport(2))
        << "without options, the three streams are pipes";
    in->write("hello\n");
    in->write(std::string("world\n"));
    in->write_eof();
    co_await r->done.wait();
    EXPECT_EQ(r->data[1], "hello\nworld\n");
    EXPECT_EQ(r->data[2], "oops\n");
    EXPECT_EQ(transport.get_returncode(), 3);
    EXPECT_EQ(r->returncode_at_exit, 3) << "process_exited comes after the child is reaped";
    expect_whole_story(*r, {"pipe 0 lost", "pipe 1 lost", "pipe 2 lost", "exited"});
    for (int fd = 0; fd < 3; ++fd)
      EXPECT_EQ(r->pipe_error[fd], nullptr) << "fd " << fd;
    EXPECT_FALSE(transport.is_closing());
  }());
}

// close() closes the pipes and kills a child that still runs; the protocol still hears the end.
// After connection_lost the transport has let go of the process: ProcessLookupError.
TEST(SubprocessProtocol, CloseKillsARunningChildAndSignalsThenFindNoProcess) {
  run_test([]() -> Coro<void> {
    std::shared_ptr<Recorder> r = co_await sh_protocol("sleep 60", sp::Options::piped());
    asyncio::SubprocessTransport t = r->transport;
    t.close();
    EXPECT_TRUE(t.is_closing());
    t.close();  // again: nothing
    co_await r->done.wait();
    EXPECT_EQ(t.get_returncode(), -SIGKILL);
    expect_whole_story(*r, {"pipe 0 lost", "pipe 1 lost", "pipe 2 lost", "exited"});
    EXPECT_THROW(t.send_signal(SIGTERM), asyncio::ProcessLookupError);
    EXPECT_THROW(t.kill(), asyncio::ProcessLookupError);
  }());
}

TEST(SubprocessProtocol, TerminateShowsInTheReturncode) {
  run_test([]() -> Coro<void> {
    std::shared_ptr<Recorder> r = co_await sh_protocol("exec sleep 60", sp::Options::piped());
    r->transport.terminate();
    co_await r->done.wait();
    EXPECT_EQ(r->transport.get_returncode(), -SIGTERM);
    EXPECT_EQ(r->returncode_at_exit, -SIGTERM);
  }());
}

// A child that exits without reading its stdin: the stdin transport learns that its reader has
// gone (a poll on the socket's hang-up, as asyncio watches its pipe) and ends, so connection_lost
// comes although nobody closed stdin. The protocol is the only one holding the transport.
TEST(SubprocessProtocol, StdinEndsWhenTheChildExitsWithoutReadingIt) {
  run_test([]() -> Coro<void> {
    std::shared_ptr<Recorder> r = co_await sh_protocol("exit 0", sp::Options::piped());
    co_await r->done.wait();
    EXPECT_EQ(r->transport.get_returncode(), 0);
    EXPECT_EQ(r->pipe_error[0], nullptr);
    EXPECT_TRUE(r->transport.get_pipe_transport(0)->is_closing());
    expect_whole_story(*r, {"pipe 0 lost", "pipe 1 lost", "pipe 2 lost", "exited"});
  }());
}

// Only PIPE streams get a pipe transport; STDOUT sends stderr's bytes to the stdout pipe.
TEST(SubprocessProtocol, OnlyPipedStreamsHaveTransports) {
  run_test([]() -> Coro<void> {
    sp::Options o;
    o.stdin_ = sp::DEVNULL;
    o.stdout_ = sp::PIPE;
    o.stderr_ = sp::STDOUT;
    std::vector<std::string> argv{"/bin/sh", "-c", "echo a; echo b >&2"};
    auto [t, r] = co_await asyncio::subprocess_exec(make_recorder, argv, o);
    EXPECT_FALSE(t.get_pipe_transport(0));
    EXPECT_TRUE(t.get_pipe_transport(1));
    EXPECT_FALSE(t.get_pipe_transport(2));
    EXPECT_FALSE(t.get_pipe_transport(3));
    EXPECT_FALSE(t.get_pipe_transport(-1));
    EXPECT_THROW(t.get_pipe_transport(1)->write("x"), std::runtime_error);  // a read pipe's
    co_await r->done.wait();
    EXPECT_EQ(r->data[1], "a\nb\n");
    expect_whole_story(*r, {"pipe 1 lost", "exited"});
  }());
}

// Flow control of the stdin pipe reaches the subprocess protocol: 1 MiB to a child that reads it
// all passes the high-water mark at once (pause_writing within write()) and drains below the
// low one later (resume_writing).
TEST(SubprocessProtocol, StdinFlowControlReachesTheProtocol) {
  run_test([]() -> Coro<void> {
    std::shared_ptr<Recorder> r = co_await sh_protocol("wc -c", sp::Options::piped());
    std::optional<asyncio::Transport> in = r->transport.get_pipe_transport(0);
    in->write(std::string(1 << 20, 'x'));
    EXPECT_EQ(r->paused, 1);
    co_await r->resumed_event.wait();
    EXPECT_EQ(r->resumed, 1);
    in->close();
    co_await r->done.wait();
    EXPECT_EQ(r->data[1], std::to_string(1 << 20) + "\n");
    EXPECT_EQ(r->transport.get_returncode(), 0);
  }());
}

// What a protocol method throws is reported to the loop's exception handler, naming the process,
// and the delivery goes on: every byte still arrives, and the end comes.
TEST(SubprocessProtocol, ProtocolExceptionsAreReportedAndDeliveryGoesOn) {
  struct Throws : Recorder {
    void pipe_data_received(int fd, std::string bytes) override {
      Recorder::pipe_data_received(fd, std::move(bytes));
      throw std::runtime_error("boom");
    }
    void process_exited() override {
      Recorder::process_exited();
      throw std::logic_error("bang");
    }
  };
  gilio::testing::Reports reports;
  run_test([&reports]() -> Coro<void> {
    reports.install(asyncio::get_running_loop());
    auto factory = [] { return std::make_shared<Throws>(); };
    std::vector<std::string> argv{"/bin/sh", "-c", "printf abc; printf def >&2"};
    auto [t, r] = co_await asyncio::subprocess_exec(factory, argv);
    co_await r->done.wait();
    EXPECT_EQ(r->data[1], "abc");
    EXPECT_EQ(r->data[2], "def");
    expect_whole_story(*r, {"pipe 0 lost", "pipe 1 lost", "pipe 2 lost", "exited"});
    EXPECT_GE(reports.seen.size(), 3u);  // a piece of stdout, one of stderr, process_exited
    const std::string pid = std::to_string(t.get_pid());
    for (const asyncio::ExceptionContext& c : reports.seen) {
      EXPECT_EQ(c.message, "Exception in callback");
      EXPECT_NE(c.handle.find("for process " + pid), std::string::npos) << c.handle;
      const std::string what = gilio::testing::what_of(c);
      if (c.handle.find("SubprocessProtocol.process_exited()") == 0) {
        EXPECT_EQ(what, "bang");
      } else {
        EXPECT_EQ(c.handle.find("SubprocessProtocol.pipe_data_received()"), 0u) << c.handle;
        EXPECT_EQ(what, "boom");
      }
    }
  }());
}

TEST(SubprocessProtocol, ErrorsNameWhatIsWrong) {
  run_test([]() -> Coro<void> {
    std::vector<std::string> missing{"/no/such/program"};
    co_await gilio::testing::expect_await_throws<asyncio::FileNotFoundError>(
        asyncio::subprocess_exec(make_recorder, missing), "a missing program was started",
        "/no/such/program");
    auto none = [] { return std::shared_ptr<Recorder>(); };
    std::vector<std::string> argv{"true"};
    co_await gilio::testing::expect_await_throws<std::invalid_argument>(
        asyncio::subprocess_exec(none, argv), "a null protocol was accepted", "no protocol");
    asyncio::SubprocessTransport unset;
    EXPECT_THROW((void)unset.get_pid(), std::runtime_error);
  }());
}

// A loop that closes while a child runs under a protocol kills and reaps it, and lets go of the
// protocol (LeakSanitizer would see the cycle through the pipe protocols otherwise).
TEST(SubprocessProtocol, ClosingTheLoopKillsAndReapsTheChild) {
  pid_t pid = 0;
  std::weak_ptr<Recorder> kept;
  asyncio::run([&]() -> Coro<void> {
    std::shared_ptr<Recorder> r = co_await sh_protocol("exec sleep 60", sp::Options::piped());
    pid = r->transport.get_pid();
    kept = r;
  }());
  EXPECT_TRUE(reaped(pid));
  EXPECT_TRUE(kept.expired()) << "the protocol outlived its loop";
}
