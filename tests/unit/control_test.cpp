#include "scheduler/control.h"

#include <grp.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <stdexcept>
#include <string>

namespace zernel {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using Response = ControlServer::Response;

sockaddr_un address_of(const fs::path& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  return addr;
}

// A connected client socket with a receive timeout, so a server bug fails the test
// instead of hanging it. -errno if connect fails.
int connect_to(const fs::path& path) {
  const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  timeval tv{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  const sockaddr_un addr = address_of(path);
  if (connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0) {
    const int err = errno;
    close(fd);
    return -err;
  }
  return fd;
}

std::string read_all(int fd) {
  std::string out;
  char buf[4096];
  for (ssize_t n; (n = recv(fd, buf, sizeof(buf), 0)) > 0;) out.append(buf, static_cast<std::size_t>(n));
  return out;
}

// Sends `request` as is and returns everything the server says until it closes. (Not
// named exchange: ADL would find std::exchange for a (path, string) call.)
std::string ask(const fs::path& path, const std::string& request) {
  const int fd = connect_to(path);
  if (fd < 0) return "connect failed: " + std::string(std::strerror(-fd));
  send(fd, request.data(), request.size(), MSG_NOSIGNAL);
  std::string out = read_all(fd);
  close(fd);
  return out;
}

class Control : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/zernel-control-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    tmp_ = tmpl;
    path_ = tmp_ / "run" / "ctl.sock";  // "run" does not exist yet: the server makes it
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(tmp_, ec);
  }

  // A server with the handlers the agent will have (status and policy), allowing us.
  std::unique_ptr<ControlServer> make_server(std::chrono::milliseconds io_timeout = ControlServer::kDefaultIoTimeout) {
    auto s = std::make_unique<ControlServer>(path_, getuid(), io_timeout);
    s->on("status", [this](auto) { return Response::ok({"policy=" + policy_, "attached=1"}); });
    s->on("policy", [this](auto args) {
      if (args[0] != "fair" && args[0] != "fifo")
        return Response::fail("unknown policy '" + std::string(args[0]) + "'", "use one of: fair, fifo");
      policy_ = args[0];
      return Response::ok();
    });
    return s;
  }

  std::unique_ptr<ControlServer> started_server(std::chrono::milliseconds io_timeout = ControlServer::kDefaultIoTimeout) {
    auto s = make_server(io_timeout);
    std::string error;
    EXPECT_TRUE(s->start(&error)) << error;
    return s;
  }

  fs::path tmp_;
  fs::path path_;
  std::string policy_ = "fair";  // touched only on the control thread while serving
};

TEST(ControlProtocol, SplitsWordsAndDropsCarriageReturn) {
  const auto w = control::split_words("  policy\tfifo \r");
  ASSERT_EQ(w.size(), 2u);
  EXPECT_EQ(w[0], "policy");
  EXPECT_EQ(w[1], "fifo");
  EXPECT_TRUE(control::split_words(" \r").empty());
}

TEST(ControlProtocol, HandlerTextCannotEndTheAnswerEarly) {
  const Response r = Response::ok({"ok", "error: not really", "two\nlines"});
  EXPECT_EQ(control::format_response(r), " ok\n error: not really\ntwo\nlines\nok\n");
  const Response e = Response::fail("bad\nthing", "do\nthis");
  EXPECT_EQ(control::format_response(e), "error: bad thing; fix: do this\n");
}

TEST(ControlProtocol, ValidWordsHaveNoSpacesOrControls) {
  EXPECT_TRUE(control::is_valid_word("/tmp/trace.bin"));
  EXPECT_FALSE(control::is_valid_word("a b"));
  EXPECT_FALSE(control::is_valid_word("a\nb"));
  EXPECT_FALSE(control::is_valid_word(""));
}

TEST_F(Control, StatusAndPolicyHandlersAnswer) {
  auto server = started_server();
  EXPECT_EQ(ask(path_, "status\n"), "policy=fair\nattached=1\nok\n");
  EXPECT_EQ(ask(path_, "policy fifo\n"), "ok\n");
  EXPECT_EQ(ask(path_, "status\r\n"), "policy=fifo\nattached=1\nok\n");
  EXPECT_EQ(ask(path_, "policy nosuch\n"), "error: unknown policy 'nosuch'; fix: use one of: fair, fifo\n");
}

TEST_F(Control, WrongArgumentCountNeverReachesTheHandler) {
  auto server = started_server();
  EXPECT_EQ(ask(path_, "policy\n"), "error: 'policy' takes 1 argument, got 0; fix: zernelctl policy <name>\n");
  EXPECT_EQ(ask(path_, "status now\n"), "error: 'status' takes 0 arguments, got 1; fix: zernelctl status\n");
}

TEST_F(Control, UnknownCommandListsTheKnownOnes) {
  auto server = started_server();
  EXPECT_EQ(ask(path_, "reload\n"), "error: unknown command 'reload' (known: policy, status); fix: see zernelctl --help\n");
  const std::string empty = ask(path_, "\n");
  EXPECT_TRUE(empty.starts_with("error: empty request; fix: send one line: status | policy <name>")) << empty;
}

TEST_F(Control, RequestWithoutNewlineIsAnsweredAtEof) {
  auto server = started_server();
  const int fd = connect_to(path_);
  ASSERT_GE(fd, 0);
  send(fd, "status", 6, MSG_NOSIGNAL);
  shutdown(fd, SHUT_WR);
  EXPECT_EQ(read_all(fd), "policy=fair\nattached=1\nok\n");
  close(fd);
}

TEST_F(Control, OverLongRequestIsRefused) {
  auto server = started_server();
  const std::string refused = ask(path_, std::string(8192, 'a'));
  EXPECT_TRUE(refused.starts_with("error: request longer than 4096 bytes; fix: ")) << refused;
  // The bound is inclusive: 4095 bytes and the newline is still a request.
  const std::string longest = ask(path_, std::string(control::kMaxRequestBytes - 1, 'b') + "\n");
  EXPECT_TRUE(longest.starts_with("error: unknown command 'bbbb")) << longest.substr(0, 80);
  EXPECT_NE(longest.find("...'"), std::string::npos) << "the echoed word is clipped";
  // And the server is still there.
  EXPECT_EQ(ask(path_, "status\n"), "policy=fair\nattached=1\nok\n");
}

TEST_F(Control, SilentClientDoesNotBlockAnother) {
  auto server = started_server(std::chrono::milliseconds(800));
  const int silent = connect_to(path_);
  ASSERT_GE(silent, 0);
  send(silent, "sta", 3, MSG_NOSIGNAL);  // half a request, then nothing
  const auto t0 = Clock::now();
  EXPECT_EQ(ask(path_, "status\n"), "policy=fair\nattached=1\nok\n");
  EXPECT_LT(Clock::now() - t0, std::chrono::milliseconds(400)) << "the second client waited for the first";
  // The silent one is told why and closed once its time is up.
  EXPECT_EQ(read_all(silent).substr(0, 44), "error: no complete request within 800 ms; fi");
  EXPECT_GE(Clock::now() - t0, std::chrono::milliseconds(700));
  close(silent);
}

TEST_F(Control, SocketIsPrivate) {
  auto server = started_server();
  struct stat st {};
  ASSERT_EQ(stat(path_.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  ASSERT_EQ(stat(path_.parent_path().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0700u);
}

TEST_F(Control, StaleSocketIsReplaced) {
  // What a crashed scheduler leaves: a socket file nobody listens on.
  fs::create_directories(path_.parent_path());
  const int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  const sockaddr_un addr = address_of(path_);
  ASSERT_EQ(bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)), 0);
  close(fd);
  ASSERT_TRUE(fs::is_socket(path_));
  auto server = started_server();
  EXPECT_EQ(ask(path_, "status\n"), "policy=fair\nattached=1\nok\n");
}

TEST_F(Control, LiveSocketRefusesASecondServer) {
  auto first = started_server();
  auto second = make_server();
  std::string error;
  EXPECT_FALSE(second->start(&error));
  EXPECT_EQ(error, "another zernel-scheduler is running (control socket " + path_.string() +
                       " answers); fix: stop it first");
  second.reset();  // its destructor must not remove the first one's socket
  EXPECT_EQ(ask(path_, "status\n"), "policy=fair\nattached=1\nok\n");
}

TEST_F(Control, NonSocketFileIsLeftAlone) {
  fs::create_directories(path_.parent_path());
  { std::ofstream(path_) << "precious\n"; }
  auto server = make_server();
  std::string error;
  EXPECT_FALSE(server->start(&error));
  EXPECT_NE(error.find("exists and is not a socket; fix: remove it"), std::string::npos) << error;
  EXPECT_TRUE(fs::is_regular_file(path_));
}

TEST_F(Control, StopRemovesTheSocketAndCanRestart) {
  auto server = started_server();
  server->stop();
  EXPECT_FALSE(fs::exists(path_));
  EXPECT_FALSE(server->running());
  server->stop();  // idempotent
  std::string error;
  ASSERT_TRUE(server->start(&error)) << error;
  EXPECT_EQ(ask(path_, "status\n"), "policy=fair\nattached=1\nok\n");
}

TEST_F(Control, ThrowingHandlerIsAnErrorNotACrash) {
  auto server = make_server();
  server->on("reload", [](auto) -> Response { throw std::runtime_error("config.toml: line 3"); });
  std::string error;
  ASSERT_TRUE(server->start(&error)) << error;
  EXPECT_EQ(ask(path_, "reload\n"),
            "error: the 'reload' handler failed: config.toml: line 3; fix: see the zernel-scheduler log; this is a "
            "bug, please report it\n");
  EXPECT_EQ(ask(path_, "status\n"), "policy=fair\nattached=1\nok\n");
}

// Runs ask(path, "status\n") in a child with uid/gid 65534 and returns its answer.
std::string ask_as_nobody(const fs::path& path) {
  int pipefd[2];
  if (pipe(pipefd) != 0) return "pipe failed";
  const pid_t pid = fork();
  if (pid == 0) {
    close(pipefd[0]);
    std::string out;
    if (setgroups(0, nullptr) != 0 || setgid(65534) != 0 || setuid(65534) != 0) out = "cannot drop to uid 65534";
    else out = ask(path, "status\n");
    if (write(pipefd[1], out.data(), out.size()) < 0) _exit(2);
    _exit(0);
  }
  close(pipefd[1]);
  std::string out;
  char buf[4096];
  for (ssize_t n; (n = read(pipefd[0], buf, sizeof(buf))) > 0;) out.append(buf, static_cast<std::size_t>(n));
  close(pipefd[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  return out;
}

TEST_F(Control, OtherUsersAreRefused) {
  if (getuid() != 0) GTEST_SKIP() << "needs root to run a client as another uid";
  auto server = started_server();  // allows uid 0 (and getuid(), also 0 here)
  // Gate 1: the socket's mode and directory.
  EXPECT_EQ(ask_as_nobody(path_), "connect failed: Permission denied");
  // Gate 2: with the file opened up by mistake, the peer's credentials still decide.
  ASSERT_EQ(chmod(path_.parent_path().c_str(), 0711), 0);
  ASSERT_EQ(chmod(tmp_.c_str(), 0711), 0);
  ASSERT_EQ(chmod(path_.c_str(), 0666), 0);
  EXPECT_EQ(ask_as_nobody(path_), "error: permission denied (peer uid 65534); fix: run zernelctl as root\n");
  EXPECT_EQ(ask(path_, "status\n"), "policy=fair\nattached=1\nok\n");
}

}  // namespace
}  // namespace zernel
