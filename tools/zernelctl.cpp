// zernelctl: the operator's end of a running zernel-scheduler's control socket. Sends one
// request, prints the answer's lines, and exits 0 on "ok", 1 on an error (the scheduler's
// or a missing scheduler), 2 on a usage error.
#include <errno.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "scheduler/control_protocol.h"

namespace {

using Clock = std::chrono::steady_clock;
namespace control = zernel::control;

constexpr double kDefaultTimeoutS = 5;
// A trace answers when it is done: its length plus this much for writing the file.
constexpr double kTraceSlackS = 60;

int usage_error(const std::string& what, const std::string& fix = "see zernelctl --help") {
  std::fprintf(stderr, "zernelctl: %s; fix: %s\n", what.c_str(), fix.c_str());
  return 2;
}

std::string usage_line() {
  std::string s = "zernelctl [--socket PATH] ";
  for (std::size_t i = 0; i < control::kCommands.size(); ++i)
    s += (i ? " | " : "") + std::string(control::kCommands[i].usage);
  return s;
}

// CLI11 says "A subcommand is required" both for no command and for a misspelled one;
// name the word instead.
int command_error(int argc, char** argv, const std::string& cli11_what) {
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    if (a == "--socket" || a == "--timeout") {
      ++i;
      continue;
    }
    if (a.starts_with("-")) continue;
    if (control::find_command(a)) break;
    std::fprintf(stderr, "zernelctl: unknown command '%s'; fix: %s\n", argv[i], usage_line().c_str());
    return 2;
  }
  if (cli11_what == "A subcommand is required") {
    std::fprintf(stderr, "zernelctl: no command given; fix: %s\n", usage_line().c_str());
    return 2;
  }
  return usage_error(cli11_what);
}

int fail(const std::string& line) {
  std::fprintf(stderr, "zernelctl: %s\n", line.c_str());
  return 1;
}

int ms_left(Clock::time_point deadline) {
  const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return left < 0 ? 0 : static_cast<int>(std::min<long long>(left, 1 << 30));
}

class Exchange {
 public:
  Exchange(std::string path, std::string request, double timeout_s)
      : path_(std::move(path)),
        request_(std::move(request)),
        timeout_s_(timeout_s),
        deadline_(Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(timeout_s))) {}
  ~Exchange() {
    if (fd_ >= 0) close(fd_);
  }

  int run() {
    if (int rc = connect_socket(); rc >= 0) return rc;
    if (int rc = send_request(); rc >= 0) return rc;
    return read_answer();
  }

 private:
  // Each step returns -1 to go on, else the exit code.
  int connect_socket() {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (path_.empty() || path_.size() >= sizeof(addr.sun_path))
      return usage_error("socket path '" + path_ + "' is empty or longer than " +
                         std::to_string(sizeof(addr.sun_path) - 1) + " bytes");
    std::memcpy(addr.sun_path, path_.data(), path_.size());
    fd_ = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd_ < 0) return fail("cannot create a socket: " + std::string(std::strerror(errno)) + "; fix: check ulimit -n");
    for (;;) {
      if (connect(fd_, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) == 0) return -1;
      const int err = errno;
      // EAGAIN: the scheduler's backlog is full; it is busy, not gone.
      if ((err == EAGAIN || err == EINTR) && ms_left(deadline_) > 0) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        continue;
      }
      const std::string why = "cannot connect to " + path_ + ": " + std::strerror(err);
      if (err == ENOENT || err == ECONNREFUSED || err == ENOTDIR)
        return fail("no zernel-scheduler is running (" + why + "); fix: start zernel-scheduler");
      if (err == EACCES || err == EPERM) return fail(why + "; fix: run zernelctl as root");
      if (err == EAGAIN) return timed_out("accept the connection");
      return fail(why + "; fix: check that --socket names a zernel-scheduler control socket");
    }
  }

  int send_request() {
    std::size_t sent = 0;
    while (sent < request_.size()) {
      pollfd p{fd_, POLLOUT, 0};
      const int n = poll(&p, 1, ms_left(deadline_));
      if (n < 0 && errno == EINTR) continue;
      if (n == 0) return timed_out("read the request");
      const ssize_t w = send(fd_, request_.data() + sent, request_.size() - sent, MSG_NOSIGNAL);
      if (w < 0) {
        if (errno == EAGAIN || errno == EINTR) continue;
        // It may have answered (and closed) already: an error line is still worth reading.
        break;
      }
      sent += static_cast<std::size_t>(w);
    }
    return -1;
  }

  int read_answer() {
    std::string buf;
    char chunk[4096];
    for (;;) {
      for (std::size_t nl; (nl = buf.find('\n')) != std::string::npos; buf.erase(0, nl + 1)) {
        const std::string line = buf.substr(0, nl);
        switch (control::classify(line)) {
          case control::LineKind::kOk:
            return 0;
          case control::LineKind::kError:
            return fail(line);
          case control::LineKind::kData:
            std::printf("%s\n", line.c_str());
            std::fflush(stdout);
            break;
        }
      }
      pollfd p{fd_, POLLIN, 0};
      const int n = poll(&p, 1, ms_left(deadline_));
      if (n < 0 && errno == EINTR) continue;
      if (n == 0) return timed_out("answer");
      const ssize_t r = recv(fd_, chunk, sizeof(chunk), 0);
      if (r < 0 && (errno == EAGAIN || errno == EINTR)) continue;
      if (r <= 0)
        return fail("zernel-scheduler closed the control connection before it finished answering" +
                    std::string(r < 0 ? std::string(" (") + std::strerror(errno) + ")" : "") +
                    "; fix: check its log (journalctl -u zernel-scheduler, or /run/zernel/zernel.log)");
      buf.append(chunk, static_cast<std::size_t>(r));
    }
  }

  int timed_out(const std::string& what) {
    char secs[32];
    std::snprintf(secs, sizeof(secs), "%g", timeout_s_);
    std::string req = request_;
    if (!req.empty() && req.back() == '\n') req.pop_back();
    return fail("zernel-scheduler (" + path_ + ") did not " + what + " for '" + req + "' within " + secs +
                " s; fix: check that it is not stuck (its log, or zernelctl status)");
  }

  std::string path_;
  std::string request_;
  double timeout_s_;
  Clock::time_point deadline_;
  int fd_ = -1;
};

}  // namespace

int main(int argc, char** argv) {
  std::string socket_path(control::kDefaultSocketPath);
  double timeout_s = 0;  // 0: per command
  std::string policy_name, trace_seconds, trace_file;

  CLI::App app{"zernelctl: control a running zernel-scheduler over its control socket (needs root)."};
  app.add_option("--socket", socket_path, "Control socket of the scheduler")->capture_default_str();
  app.add_option("--timeout", timeout_s, "Seconds to wait for the whole exchange (tests)")
      ->check(CLI::Range(0.01, 86400.0))
      ->group("");
  app.require_subcommand(1);
  CLI::App* status = app.add_subcommand("status", "Print the scheduler's state");
  CLI::App* policy = app.add_subcommand("policy", "Switch the scheduling policy without detaching");
  policy->add_option("name", policy_name, "Policy to switch to (fair | fifo | phase)")->required();
  CLI::App* reload = app.add_subcommand("reload", "Re-read the configuration");
  CLI::App* trace = app.add_subcommand("trace", "Record scheduling events into FILE for SECONDS");
  trace->add_option("seconds", trace_seconds, "How long to record (0.001..3600)")
      ->required()
      ->check(CLI::Range(0.001, 3600.0));
  trace->add_option("file", trace_file, "Where the scheduler writes the trace")->required();
  CLI::App* phases = app.add_subcommand(
      "phases", "List the tasks of ML jobs with their committed phase: <tid> <tgid> <phase> per line");
  app.set_version_flag("-V,--version", "zernelctl 0.1.0");

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    return command_error(argc, argv, e.what());
  }

  std::vector<std::string> words;
  double default_timeout = kDefaultTimeoutS;
  if (status->parsed()) {
    words = {"status"};
  } else if (policy->parsed()) {
    words = {"policy", policy_name};
  } else if (reload->parsed()) {
    words = {"reload"};
  } else if (phases->parsed()) {
    words = {"phases"};
  } else if (trace->parsed()) {
    // The scheduler runs in another directory: a relative path would land in its cwd.
    std::error_code ec;
    const std::filesystem::path file = std::filesystem::absolute(trace_file, ec).lexically_normal();
    if (ec) return usage_error("cannot resolve '" + trace_file + "': " + ec.message());
    words = {"trace", trace_seconds, file.string()};
    default_timeout = std::ceil(std::stod(trace_seconds)) + kTraceSlackS;
  }
  for (const std::string& w : words)
    if (!control::is_valid_word(w))
      return usage_error("'" + w + "' contains spaces or control characters, which the control protocol cannot carry",
                         "use a name or path without them");
  const std::string request = control::format_request(words);
  if (request.size() > control::kMaxRequestBytes)
    return usage_error("the request is " + std::to_string(request.size()) + " bytes, more than the " +
                       std::to_string(control::kMaxRequestBytes) + " the scheduler accepts");

  return Exchange(socket_path, request, timeout_s > 0 ? timeout_s : default_timeout).run();
}
