#include "scheduler/control.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <exception>
#include <string>
#include <vector>

namespace zernel {
namespace {

using Clock = std::chrono::steady_clock;
using control::Response;

constexpr std::size_t kControlStackBytes = 512 * 1024;

struct Connection {
  int fd = -1;
  Clock::time_point deadline;
  std::string in;
  std::string out;
  std::size_t sent = 0;
  bool answering = false;  // the request is read (or refused): now sending `out`
};

std::string errno_text(int err) { return std::strerror(err); }

void close_fd(int& fd) {
  if (fd >= 0) close(fd);
  fd = -1;
}

bool make_address(const std::filesystem::path& path, sockaddr_un* addr, std::string* error) {
  *addr = {};
  addr->sun_family = AF_UNIX;
  const std::string& s = path.native();
  if (s.empty() || s.size() >= sizeof(addr->sun_path)) {
    *error = "control socket path '" + s + "' is empty or longer than " +
             std::to_string(sizeof(addr->sun_path) - 1) + " bytes; fix: use a shorter path";
    return false;
  }
  std::memcpy(addr->sun_path, s.data(), s.size());
  return true;
}

// mkdir -p with 0700 for what we create; directories that exist keep their mode (the
// parent may be /tmp or /run, which are not ours to narrow).
bool make_private_dirs(const std::filesystem::path& dir, std::string* error) {
  if (dir.empty()) return true;
  std::filesystem::path p;
  for (const auto& part : dir) {
    p /= part;
    if (mkdir(p.c_str(), 0700) != 0 && errno != EEXIST) {
      *error = "cannot create the control socket directory " + p.string() + ": " + errno_text(errno) +
               "; fix: run zernel-scheduler as root, or check that " + p.parent_path().string() +
               " is a writable directory";
      return false;
    }
  }
  struct stat st {};
  if (stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    *error = dir.string() + " is not a directory; fix: remove it so the control socket can be created there";
    return false;
  }
  return true;
}

enum class Probe { kAbsent, kStale, kLive, kError };

// What is at the socket path: nothing, a socket file nobody listens on (left by a
// scheduler that crashed: safe to replace), or a live server (never replace: that would
// orphan its zernelctl users).
Probe probe_socket(const std::filesystem::path& path, const sockaddr_un& addr, std::string* error) {
  struct stat st {};
  if (lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return Probe::kAbsent;
    *error = "cannot inspect the control socket " + path.string() + ": " + errno_text(errno) +
             "; fix: run zernel-scheduler as root";
    return Probe::kError;
  }
  if (!S_ISSOCK(st.st_mode)) {
    *error = path.string() + " exists and is not a socket; fix: remove it (it is not a zernel control socket)";
    return Probe::kError;
  }
  const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    *error = "cannot create a socket: " + errno_text(errno) + "; fix: check the process's file limit (ulimit -n)";
    return Probe::kError;
  }
  const int rc = connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr));
  const int err = errno;
  close(fd);
  // EAGAIN: the listener's backlog is full. Busy is alive.
  if (rc == 0 || err == EAGAIN) return Probe::kLive;
  if (err == ECONNREFUSED) return Probe::kStale;
  if (err == ENOENT) return Probe::kAbsent;  // removed meanwhile
  *error = "cannot check whether another zernel-scheduler answers on " + path.string() + ": " +
           errno_text(err) + "; fix: run zernel-scheduler as root";
  return Probe::kError;
}

std::string already_running(const std::filesystem::path& path) {
  return "another zernel-scheduler is running (control socket " + path.string() + " answers); fix: stop it first";
}

std::string usage_list() {
  std::string s;
  for (const auto& c : control::kCommands) {
    if (!s.empty()) s += " | ";
    s += c.usage;
  }
  return s;
}

// Echoing a client's word back into an error must not let it grow the line without bound.
std::string clip(std::string_view w) {
  constexpr std::size_t kMax = 64;
  return w.size() <= kMax ? std::string(w) : std::string(w.substr(0, kMax)) + "...";
}

}  // namespace

ControlServer::ControlServer(std::filesystem::path socket_path, uid_t allowed_uid,
                             std::chrono::milliseconds io_timeout)
    : path_(std::move(socket_path)), allowed_uid_(allowed_uid), io_timeout_(io_timeout) {}

ControlServer::~ControlServer() { stop(); }

void ControlServer::on(std::string command, Handler handler) {
  handlers_[std::move(command)] = std::move(handler);
}

std::string ControlServer::answer(std::string_view request_line) const {
  const std::vector<std::string_view> words = control::split_words(request_line);
  auto respond = [&]() -> Response {
    if (words.empty()) return Response::fail("empty request", "send one line: " + usage_list());
    const std::string_view cmd = words.front();
    const auto it = handlers_.find(cmd);
    if (it == handlers_.end()) {
      std::string known;
      for (const auto& [name, handler] : handlers_) known += (known.empty() ? "" : ", ") + name;
      return Response::fail("unknown command '" + clip(cmd) + "' (known: " + (known.empty() ? "none" : known) + ")",
                            "see zernelctl --help");
    }
    const auto args = std::span<const std::string_view>(words).subspan(1);
    if (const control::CommandSpec* spec = control::find_command(cmd); spec && args.size() != spec->nargs)
      return Response::fail("'" + std::string(cmd) + "' takes " + std::to_string(spec->nargs) + " argument" +
                                (spec->nargs == 1 ? "" : "s") + ", got " + std::to_string(args.size()),
                            "zernelctl " + std::string(spec->usage));
    // A throwing handler is a bug, but not one worth the scheduler: the dispatcher keeps
    // running and the operator gets told.
    try {
      return it->second(args);
    } catch (const std::exception& e) {
      return Response::fail("the '" + std::string(cmd) + "' handler failed: " + e.what(),
                            "see the zernel-scheduler log; this is a bug, please report it");
    }
  };
  return control::format_response(respond());
}

bool ControlServer::start(std::string* error) {
  std::string scratch;
  if (!error) error = &scratch;
  if (thread_started_) {
    *error = "the control server is already running; fix: call stop() first";
    return false;
  }
  sockaddr_un addr{};
  if (!make_address(path_, &addr, error) || !make_private_dirs(path_.parent_path(), error)) return false;

  switch (probe_socket(path_, addr, error)) {
    case Probe::kLive:
      *error = already_running(path_);
      return false;
    case Probe::kError:
      return false;
    case Probe::kStale:
      if (unlink(path_.c_str()) != 0 && errno != ENOENT) {
        *error = "cannot remove the stale control socket " + path_.string() + ": " + errno_text(errno) +
                 "; fix: remove it by hand";
        return false;
      }
      break;
    case Probe::kAbsent:
      break;
  }

  listen_fd_ = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (listen_fd_ < 0) {
    *error = "cannot create the control socket: " + errno_text(errno) + "; fix: check ulimit -n";
    return false;
  }
  if (bind(listen_fd_, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0) {
    const int err = errno;
    close_fd(listen_fd_);
    // EADDRINUSE here means another instance bound between our probe and bind.
    *error = err == EADDRINUSE ? already_running(path_)
                               : "cannot bind the control socket " + path_.string() + ": " + errno_text(err) +
                                     "; fix: run zernel-scheduler as root";
    return false;
  }
  struct stat st {};
  auto fail_after_bind = [&](std::string what) {
    *error = std::move(what);
    close_fd(listen_fd_);
    close_fd(wake_fd_);
    unlink(path_.c_str());
    return false;
  };
  // The directory is 0700 already; the mode is for a socket placed in a shared directory.
  if (chmod(path_.c_str(), 0600) != 0 || stat(path_.c_str(), &st) != 0)
    return fail_after_bind("cannot restrict the control socket " + path_.string() + " to mode 0600: " +
                           errno_text(errno) + "; fix: run zernel-scheduler as root");
  sock_dev_ = st.st_dev;
  sock_ino_ = st.st_ino;
  if (listen(listen_fd_, static_cast<int>(kMaxConnections)) != 0)
    return fail_after_bind("cannot listen on the control socket: " + errno_text(errno) +
                           "; fix: this is unexpected, please report it");
  wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wake_fd_ < 0)
    return fail_after_bind("cannot create an eventfd: " + errno_text(errno) + "; fix: check ulimit -n");

  stopping_.store(false, std::memory_order_relaxed);
  // The control thread blocks every signal so SIGINT/SIGTERM reach the agent's thread,
  // whose poll() they are meant to interrupt.
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, &old);
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, kControlStackBytes);
  const int rc = pthread_create(
      &thread_, &attr, [](void* self) -> void* {
        static_cast<ControlServer*>(self)->serve();
        return nullptr;
      },
      this);
  pthread_attr_destroy(&attr);
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  if (rc != 0)
    return fail_after_bind("cannot start the control thread: " + errno_text(rc) +
                           "; fix: check the process and memory limits");
  thread_started_ = true;
  return true;
}

void ControlServer::stop() {
  stopping_.store(true, std::memory_order_relaxed);
  if (thread_started_) {
    const std::uint64_t one = 1;
    if (write(wake_fd_, &one, sizeof(one)) < 0) {
      // Cannot fail on an eventfd short of overflow; the thread also rechecks stopping_.
    }
    pthread_join(thread_, nullptr);
    thread_started_ = false;
  }
  if (listen_fd_ >= 0) {
    close_fd(listen_fd_);
    // Only our own file: a successor may already have replaced it after a stale probe.
    struct stat st {};
    if (stat(path_.c_str(), &st) == 0 && st.st_dev == sock_dev_ && st.st_ino == sock_ino_) unlink(path_.c_str());
  }
  close_fd(wake_fd_);
}

void ControlServer::serve() {
  std::vector<Connection> conns;
  std::vector<pollfd> fds;

  auto reply = [&](Connection& c, std::string text) {
    c.out = std::move(text);
    c.sent = 0;
    c.answering = true;
    c.deadline = Clock::now() + io_timeout_;
  };

  auto accept_all = [&] {
    while (conns.size() < kMaxConnections) {
      Connection c;
      c.fd = accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (c.fd < 0) return;  // EAGAIN, or the client gave up (ECONNABORTED): nothing to do
      c.deadline = Clock::now() + io_timeout_;
      ucred cred{};
      socklen_t len = sizeof(cred);
      if (getsockopt(c.fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
        reply(c, control::format_response(Response::fail(
                     "cannot read the peer's credentials: " + errno_text(errno), "run zernelctl as root")));
      } else if (cred.uid != 0 && cred.uid != allowed_uid_) {
        reply(c, control::format_response(Response::fail(
                     "permission denied (peer uid " + std::to_string(cred.uid) + ")", "run zernelctl as root")));
      }
      conns.push_back(std::move(c));
    }
  };

  auto read_from = [&](Connection& c) {
    char buf[control::kMaxRequestBytes + 1];
    for (;;) {
      const std::size_t room = control::kMaxRequestBytes + 1 - c.in.size();
      const ssize_t n = recv(c.fd, buf, room, 0);
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno != EAGAIN) close_fd(c.fd);
        return;
      }
      c.in.append(buf, static_cast<std::size_t>(n));
      const std::size_t nl = c.in.find('\n');
      if ((nl == std::string::npos ? c.in.size() : nl + 1) > control::kMaxRequestBytes) {
        reply(c, control::format_response(Response::fail(
                     "request longer than " + std::to_string(control::kMaxRequestBytes) + " bytes",
                     "send one line: " + usage_list())));
        return;
      }
      if (nl != std::string::npos) {
        c.in.resize(nl);
        reply(c, answer(c.in));
        return;
      }
      if (n == 0) {
        // The client closed its side: a request without a newline is still a request;
        // no request at all is a client that changed its mind.
        if (c.in.empty()) close_fd(c.fd);
        else reply(c, answer(c.in));
        return;
      }
    }
  };

  auto write_to = [&](Connection& c) {
    while (c.sent < c.out.size()) {
      const ssize_t n = send(c.fd, c.out.data() + c.sent, c.out.size() - c.sent, MSG_NOSIGNAL);
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno != EAGAIN) close_fd(c.fd);
        return;
      }
      c.sent += static_cast<std::size_t>(n);
    }
    close_fd(c.fd);  // one request per connection: EOF tells the client the answer is complete
  };

  while (!stopping_.load(std::memory_order_relaxed)) {
    fds.clear();
    fds.push_back({wake_fd_, POLLIN, 0});
    fds.push_back({listen_fd_, static_cast<short>(conns.size() < kMaxConnections ? POLLIN : 0), 0});
    auto timeout_ms = -1;
    const auto now = Clock::now();
    for (const Connection& c : conns) {
      fds.push_back({c.fd, static_cast<short>(c.answering ? POLLOUT : POLLIN), 0});
      const auto left = std::chrono::ceil<std::chrono::milliseconds>(c.deadline - now).count();
      const int left_ms = static_cast<int>(std::clamp<decltype(left)>(left, 0, 60'000));
      timeout_ms = timeout_ms < 0 ? left_ms : std::min(timeout_ms, left_ms);
    }
    if (poll(fds.data(), fds.size(), timeout_ms) < 0) {
      if (errno == EINTR) continue;
      break;  // EFAULT/EINVAL/ENOMEM: nothing a retry fixes; stop() still cleans up
    }
    if (fds[0].revents) break;

    // Connections first (their pollfds line up with `conns`), then new ones.
    for (std::size_t i = 0; i < conns.size(); ++i) {
      const short ev = fds[i + 2].revents;
      if (!ev) continue;
      Connection& c = conns[i];
      if (c.answering) write_to(c);
      else read_from(c);  // also on POLLHUP/POLLERR: recv reports EOF or the error
    }
    const auto after = Clock::now();
    for (Connection& c : conns) {
      if (c.fd < 0 || after < c.deadline) continue;
      if (c.answering) {
        close_fd(c.fd);  // it does not read its answer: drop it
      } else {
        reply(c, control::format_response(Response::fail(
                     "no complete request within " + std::to_string(io_timeout_.count()) + " ms",
                     "send one line ending in a newline: " + usage_list())));
        write_to(c);
      }
    }
    std::erase_if(conns, [](const Connection& c) { return c.fd < 0; });
    if (fds[1].revents) accept_all();
  }
  for (Connection& c : conns) close_fd(c.fd);
}

bool control_socket_answers(const std::filesystem::path& path) {
  sockaddr_un addr{};
  std::string error;
  return make_address(path, &addr, &error) && probe_socket(path, addr, &error) == Probe::kLive;
}

}  // namespace zernel
