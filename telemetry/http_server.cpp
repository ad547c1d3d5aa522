#include "telemetry/http_server.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <exception>
#include <memory>
#include <string_view>
#include <utility>
#include <vector>

namespace zernel::telemetry {

namespace {

using Clock = std::chrono::steady_clock;

// After the response, the socket is shut for writing and what the client still sends is
// read and dropped for up to this long: closing with unread input makes the kernel send a
// reset, which can destroy the response before the client has read it (e.g. after a 431
// for a request we stopped reading).
constexpr std::chrono::milliseconds kLinger{1000};

constexpr std::size_t kAcceptBatch = 16;

constexpr std::string_view kMetricsContentType = "text/plain; version=0.0.4; charset=utf-8";

std::string response(std::string_view status, std::string_view content_type, std::string_view extra_headers,
                     const std::string& body, bool with_body) {
  std::string out;
  out.reserve(160 + (with_body ? body.size() : 0));
  out += "HTTP/1.1 ";
  out += status;
  out += "\r\nContent-Type: ";
  out += content_type;
  out += "\r\nContent-Length: ";
  out += std::to_string(body.size());
  out += "\r\n";
  out += extra_headers;
  out += "Connection: close\r\n\r\n";
  if (with_body) out += body;
  return out;
}

std::string plain(std::string_view status, std::string_view extra_headers, std::string body) {
  return response(status, "text/plain; charset=utf-8", extra_headers, body, true);
}

// The whole response to one request head (request line and headers, no body).
std::string handle(std::string_view head, const HttpServer::BodyFn& body_fn) {
  const std::size_t eol = head.find_first_of("\r\n");
  const std::string_view line = head.substr(0, eol);
  const std::size_t sp1 = line.find(' ');
  const std::size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos || line.find(' ', sp2 + 1) != std::string_view::npos ||
      !line.substr(sp2 + 1).starts_with("HTTP/1.")) {
    return plain("400 Bad Request", "", "bad request\n");
  }
  const std::string_view method = line.substr(0, sp1);
  std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  target = target.substr(0, target.find('?'));  // Prometheus may add ?name[]=...; we serve all

  if (target != "/metrics") return plain("404 Not Found", "", "not found; the metrics are at /metrics\n");
  const bool head_only = method == "HEAD";
  if (method != "GET" && !head_only) {
    return plain("405 Method Not Allowed", "Allow: GET, HEAD\r\n", "method not allowed; use GET\n");
  }
  std::string body;
  try {
    body = body_fn();
  } catch (const std::exception& e) {
    return plain("500 Internal Server Error", "", std::string("metrics unavailable: ") + e.what() + "\n");
  }
  return response("200 OK", kMetricsContentType, "", body, !head_only);
}

// End of the request head ("\r\n\r\n", or bare "\n\n" from hand-typed requests), or npos.
std::size_t head_end(std::string_view buf) {
  const std::size_t crlf = buf.find("\r\n\r\n");
  const std::size_t lf = buf.find("\n\n");
  return std::min(crlf, lf);
}

enum class ConnState { Reading, Writing, Draining };

struct Conn {
  int fd = -1;
  ConnState state = ConnState::Reading;
  std::string in;
  std::string out;
  std::size_t sent = 0;
  Clock::time_point deadline;

  Conn(int f, Clock::time_point d) : fd(f), deadline(d) {}
  ~Conn() {
    if (fd >= 0) ::close(fd);
  }
  Conn(const Conn&) = delete;
  Conn& operator=(const Conn&) = delete;
};

// "127.0.0.1:9093", "[::1]:9093"
std::string endpoint(const std::string& address, std::uint16_t port) {
  const bool v6 = address.find(':') != std::string::npos;
  return (v6 ? "[" + address + "]" : address) + ":" + std::to_string(port);
}

std::string listen_error(const std::string& address, std::uint16_t port, std::string_view cause, int err) {
  std::string_view fix = "set [telemetry] metrics_port or stop the other process";
  if (err == EACCES) fix = "set [telemetry] metrics_port to a port above 1023, or run as root";
  if (err == EADDRNOTAVAIL || err == EAFNOSUPPORT || err == 0) {
    fix = "set [telemetry] metrics_address to a numeric address of this host (e.g. 127.0.0.1)";
  }
  return "cannot listen on " + endpoint(address, port) + ": " + std::string(cause) + "; fix: " + std::string(fix);
}

}  // namespace

HttpServer::HttpServer(HttpServerOptions options, BodyFn body) : opts_(std::move(options)), body_(std::move(body)) {}

HttpServer::~HttpServer() { stop(); }

std::string HttpServer::start() {
  if (running()) return "metrics server already started on " + endpoint(opts_.address, port_);

  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE;
  addrinfo* res = nullptr;
  const std::string service = std::to_string(opts_.port);
  if (const int rc = ::getaddrinfo(opts_.address.c_str(), service.c_str(), &hints, &res); rc != 0) {
    return listen_error(opts_.address, opts_.port, "not a numeric IP address (" + std::string(gai_strerror(rc)) + ")", 0);
  }
  const std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> guard(res, &::freeaddrinfo);

  const int fd = ::socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return listen_error(opts_.address, opts_.port, std::strerror(errno), errno);
  // Lets a restarted scheduler bind while the previous one's connections sit in TIME_WAIT;
  // on Linux it does not let two live listeners share the port.
  const int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (::bind(fd, res->ai_addr, res->ai_addrlen) != 0 || ::listen(fd, 16) != 0) {
    const int err = errno;
    ::close(fd);
    return listen_error(opts_.address, opts_.port, std::strerror(err), err);
  }

  sockaddr_storage bound{};
  socklen_t len = sizeof(bound);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &len);
  port_ = bound.ss_family == AF_INET6 ? ntohs(reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port)
                                      : ntohs(reinterpret_cast<sockaddr_in*>(&bound)->sin_port);

  wake_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wake_fd_ < 0) {
    const int err = errno;
    ::close(fd);
    return listen_error(opts_.address, opts_.port, std::string("eventfd: ") + std::strerror(err), err);
  }
  listen_fd_ = fd;
  thread_ = std::thread([this] { run(); });
  return "";
}

void HttpServer::stop() {
  if (thread_.joinable()) {
    const std::uint64_t one = 1;
    [[maybe_unused]] const ssize_t n = ::write(wake_fd_, &one, sizeof(one));
    thread_.join();
  }
  if (listen_fd_ >= 0) ::close(listen_fd_);
  if (wake_fd_ >= 0) ::close(wake_fd_);
  listen_fd_ = wake_fd_ = -1;
}

void HttpServer::run() {
  std::vector<std::unique_ptr<Conn>> conns;
  std::vector<pollfd> fds;
  char buf[4096];

  // Moves a connection forward as far as its socket allows; false = close it.
  const auto progress = [&](Conn& c) -> bool {
    if (c.state == ConnState::Reading) {
      for (;;) {
        const ssize_t n = ::recv(c.fd, buf, sizeof(buf), 0);
        if (n == 0) return false;  // closed before a whole request
        if (n < 0) return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
        c.in.append(buf, static_cast<std::size_t>(n));
        const std::size_t end = head_end(c.in);
        if (end != std::string::npos && end <= opts_.max_request_bytes) {
          c.out = handle(std::string_view(c.in).substr(0, end), body_);
        } else if (c.in.size() > opts_.max_request_bytes) {
          c.out = plain("431 Request Header Fields Too Large", "",
                        "request larger than " + std::to_string(opts_.max_request_bytes) + " bytes\n");
        } else {
          continue;
        }
        c.in.clear();
        c.in.shrink_to_fit();
        c.state = ConnState::Writing;
        break;
      }
    }
    if (c.state == ConnState::Writing) {
      while (c.sent < c.out.size()) {
        const ssize_t n = ::send(c.fd, c.out.data() + c.sent, c.out.size() - c.sent, MSG_NOSIGNAL);
        if (n < 0) return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
        c.sent += static_cast<std::size_t>(n);
      }
      ::shutdown(c.fd, SHUT_WR);
      c.state = ConnState::Draining;
      c.deadline = std::min(c.deadline, Clock::now() + kLinger);
    }
    // Draining: drop input until the client closes.
    for (;;) {
      const ssize_t n = ::recv(c.fd, buf, sizeof(buf), 0);
      if (n == 0) return false;
      if (n < 0) return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
    }
  };

  for (;;) {
    fds.clear();
    fds.push_back({wake_fd_, POLLIN, 0});
    // At the connection limit the listener is not polled: new clients wait in the backlog
    // (and time out there if it lasts) rather than being reset.
    fds.push_back({conns.size() < opts_.max_connections ? listen_fd_ : -1, POLLIN, 0});
    Clock::time_point next_deadline = Clock::time_point::max();
    for (const auto& c : conns) {
      fds.push_back({c->fd, static_cast<short>(c->state == ConnState::Writing ? POLLOUT : POLLIN), 0});
      next_deadline = std::min(next_deadline, c->deadline);
    }
    int timeout_ms = -1;
    if (!conns.empty()) {
      const auto left = std::chrono::ceil<std::chrono::milliseconds>(next_deadline - Clock::now()).count();
      timeout_ms = static_cast<int>(std::clamp<std::int64_t>(left, 0, 60'000));
    }
    if (::poll(fds.data(), fds.size(), timeout_ms) < 0 && errno != EINTR) return;
    if (fds[0].revents != 0) return;  // stop()

    // Existing connections first: fds[2 + i] belongs to conns[i] until we change conns.
    const auto now = Clock::now();
    std::vector<std::unique_ptr<Conn>> kept;
    kept.reserve(conns.size());
    for (std::size_t i = 0; i < conns.size(); ++i) {
      Conn& c = *conns[i];
      bool keep = c.deadline > now;
      if (keep && fds[2 + i].revents != 0) keep = progress(c);
      if (keep) kept.push_back(std::move(conns[i]));
    }
    conns.swap(kept);

    if (fds[1].revents & POLLIN) {
      // A bounded number per pass: clients served at once come straight back, and an
      // endless accept loop would never get to closing the connections they left.
      for (std::size_t accepted = 0; accepted < kAcceptBatch && conns.size() < opts_.max_connections; ++accepted) {
        const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) break;  // EAGAIN, or a connection that died in the backlog
        conns.push_back(std::make_unique<Conn>(fd, Clock::now() + opts_.io_timeout));
        if (!progress(*conns.back())) conns.pop_back();  // the request is often there already
      }
    }
  }
}

}  // namespace zernel::telemetry
