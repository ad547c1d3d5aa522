#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>

#include "telemetry/http_server.h"

namespace zernel::telemetry {
namespace {

// A blocking client socket connected to 127.0.0.1:port, with a 5 s receive timeout so a
// server bug fails the test instead of hanging it.
int connect_to(std::uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  timeval tv{.tv_sec = 5, .tv_usec = 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

std::string read_all(int fd) {
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = ::recv(fd, buf, sizeof(buf), 0)) > 0) out.append(buf, static_cast<std::size_t>(n));
  if (n < 0) out += "[client: recv failed, errno " + std::to_string(errno) + "]";
  return out;
}

// Sends the request, reads until the server closes.
std::string exchange(std::uint16_t port, const std::string& request) {
  const int fd = connect_to(port);
  if (fd < 0) return "[client: connect failed, errno " + std::to_string(errno) + "]";
  for (std::size_t sent = 0; sent < request.size();) {
    const ssize_t n = ::send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) break;
    sent += static_cast<std::size_t>(n);
  }
  std::string response = read_all(fd);
  ::close(fd);
  return response;
}

struct Response {
  std::string status_line;
  std::string headers;  // "\r\n"-separated, as received
  std::string body;
};

Response parse(const std::string& raw) {
  Response r;
  const std::size_t eol = raw.find("\r\n");
  const std::size_t end = raw.find("\r\n\r\n");
  if (eol == std::string::npos || end == std::string::npos) return r;
  r.status_line = raw.substr(0, eol);
  r.headers = raw.substr(eol + 2, end - eol - 2) + "\r\n";
  r.body = raw.substr(end + 4);
  return r;
}

bool has_header(const Response& r, const std::string& header) {
  return r.headers.find(header + "\r\n") != std::string::npos;
}

HttpServerOptions ephemeral() {
  HttpServerOptions o;
  o.address = "127.0.0.1";
  o.port = 0;
  return o;
}

const std::string kBody = "# HELP x y\n# TYPE x gauge\nx 1\n";

TEST(HttpServer, ServesMetrics) {
  std::atomic<int> calls{0};
  HttpServer server(ephemeral(), [&] {
    ++calls;
    return kBody;
  });
  ASSERT_EQ(server.start(), "");
  ASSERT_NE(server.port(), 0);

  const Response r = parse(exchange(server.port(), "GET /metrics HTTP/1.1\r\nHost: localhost\r\nAccept: */*\r\n\r\n"));
  EXPECT_EQ(r.status_line, "HTTP/1.1 200 OK");
  EXPECT_TRUE(has_header(r, "Content-Type: text/plain; version=0.0.4; charset=utf-8")) << r.headers;
  EXPECT_TRUE(has_header(r, "Content-Length: " + std::to_string(kBody.size()))) << r.headers;
  EXPECT_TRUE(has_header(r, "Connection: close")) << r.headers;
  EXPECT_EQ(r.body, kBody);
  EXPECT_EQ(calls.load(), 1);

  // Prometheus' own query string, and the callback runs per request.
  const Response q = parse(exchange(server.port(), "GET /metrics?x=1 HTTP/1.0\r\n\r\n"));
  EXPECT_EQ(q.status_line, "HTTP/1.1 200 OK");
  EXPECT_EQ(q.body, kBody);
  EXPECT_EQ(calls.load(), 2);
}

TEST(HttpServer, HeadHasTheHeadersButNoBody) {
  HttpServer server(ephemeral(), [] { return kBody; });
  ASSERT_EQ(server.start(), "");
  const Response r = parse(exchange(server.port(), "HEAD /metrics HTTP/1.1\r\n\r\n"));
  EXPECT_EQ(r.status_line, "HTTP/1.1 200 OK");
  EXPECT_TRUE(has_header(r, "Content-Length: " + std::to_string(kBody.size())));
  EXPECT_EQ(r.body, "");
}

TEST(HttpServer, OtherPathsAre404OtherMethods405BadRequests400) {
  std::atomic<int> calls{0};
  HttpServer server(ephemeral(), [&] {
    ++calls;
    return kBody;
  });
  ASSERT_EQ(server.start(), "");
  EXPECT_EQ(parse(exchange(server.port(), "GET / HTTP/1.1\r\n\r\n")).status_line, "HTTP/1.1 404 Not Found");
  EXPECT_EQ(parse(exchange(server.port(), "GET /metricsx HTTP/1.1\r\n\r\n")).status_line, "HTTP/1.1 404 Not Found");
  const Response post = parse(exchange(server.port(), "POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n"));
  EXPECT_EQ(post.status_line, "HTTP/1.1 405 Method Not Allowed");
  EXPECT_TRUE(has_header(post, "Allow: GET, HEAD"));
  EXPECT_EQ(parse(exchange(server.port(), "garbage\r\n\r\n")).status_line, "HTTP/1.1 400 Bad Request");
  EXPECT_EQ(calls.load(), 0);
}

TEST(HttpServer, RejectsRequestsOver8KiB) {
  HttpServer server(ephemeral(), [] { return kBody; });
  ASSERT_EQ(server.start(), "");
  const std::string big = "GET /metrics HTTP/1.1\r\nX-Padding: " + std::string(16 * 1024, 'a') + "\r\n\r\n";
  const Response r = parse(exchange(server.port(), big));
  EXPECT_EQ(r.status_line, "HTTP/1.1 431 Request Header Fields Too Large");
  // Just under the limit is fine.
  const std::string ok = "GET /metrics HTTP/1.1\r\nX-Padding: " + std::string(7 * 1024, 'a') + "\r\n\r\n";
  EXPECT_EQ(parse(exchange(server.port(), ok)).status_line, "HTTP/1.1 200 OK");
}

TEST(HttpServer, ASilentClientDoesNotBlockOthers) {
  HttpServer server(ephemeral(), [] { return kBody; });
  ASSERT_EQ(server.start(), "");
  const int idle = connect_to(server.port());
  ASSERT_GE(idle, 0);
  ASSERT_EQ(::send(idle, "GET /met", 8, MSG_NOSIGNAL), 8);  // half a request, then nothing
  EXPECT_EQ(parse(exchange(server.port(), "GET /metrics HTTP/1.1\r\n\r\n")).body, kBody);
  ::close(idle);
}

TEST(HttpServer, IdleConnectionsTimeOut) {
  HttpServerOptions o = ephemeral();
  o.io_timeout = std::chrono::milliseconds(200);
  HttpServer server(o, [] { return kBody; });
  ASSERT_EQ(server.start(), "");
  const int idle = connect_to(server.port());
  ASSERT_GE(idle, 0);
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(read_all(idle), "");  // closed by the server, well before the 5 s client timeout
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(3));
  ::close(idle);
}

TEST(HttpServer, ACallbackThatThrowsIs500) {
  HttpServer server(ephemeral(), []() -> std::string { throw std::runtime_error("no snapshot yet"); });
  ASSERT_EQ(server.start(), "");
  const Response r = parse(exchange(server.port(), "GET /metrics HTTP/1.1\r\n\r\n"));
  EXPECT_EQ(r.status_line, "HTTP/1.1 500 Internal Server Error");
  EXPECT_EQ(r.body, "metrics unavailable: no snapshot yet\n");
}

TEST(HttpServer, PortConflictIsOneLineWithTheFix) {
  HttpServer first(ephemeral(), [] { return kBody; });
  ASSERT_EQ(first.start(), "");
  HttpServerOptions o = ephemeral();
  o.port = first.port();
  HttpServer second(o, [] { return kBody; });
  EXPECT_EQ(second.start(), "cannot listen on 127.0.0.1:" + std::to_string(first.port()) +
                                ": Address already in use; fix: set [telemetry] metrics_port or stop the other process");
  EXPECT_FALSE(second.running());
}

TEST(HttpServer, BadAddressIsOneLineWithTheFix) {
  HttpServerOptions o = ephemeral();
  o.address = "not-an-ip";
  HttpServer server(o, [] { return kBody; });
  const std::string err = server.start();
  EXPECT_TRUE(err.starts_with("cannot listen on not-an-ip:0: not a numeric IP address")) << err;
  EXPECT_NE(err.find("; fix: set [telemetry] metrics_address"), std::string::npos) << err;
}

TEST(HttpServer, StopsAndFreesThePort) {
  std::uint16_t port = 0;
  {
    HttpServer server(ephemeral(), [] { return kBody; });
    ASSERT_EQ(server.start(), "");
    port = server.port();
    EXPECT_EQ(parse(exchange(port, "GET /metrics HTTP/1.1\r\n\r\n")).body, kBody);
    server.stop();
    EXPECT_FALSE(server.running());
    server.stop();  // idempotent
    EXPECT_EQ(connect_to(port), -1);
  }
  HttpServerOptions o = ephemeral();
  o.port = port;
  HttpServer again(o, [] { return kBody; });
  EXPECT_EQ(again.start(), "");  // SO_REUSEADDR: TIME_WAIT does not keep the port
}

TEST(HttpServer, ManyClientsInParallel) {
  HttpServer server(ephemeral(), [] { return std::string(100 * 1024, 'm'); });  // larger than a socket write
  ASSERT_EQ(server.start(), "");
  std::atomic<int> ok{0};
  std::vector<std::thread> clients;
  for (int t = 0; t < 8; ++t) {
    clients.emplace_back([&] {
      for (int i = 0; i < 10; ++i) {
        const std::string raw = exchange(server.port(), "GET /metrics HTTP/1.1\r\n\r\n");
        const Response r = parse(raw);
        if (r.status_line == "HTTP/1.1 200 OK" && r.body.size() == 100 * 1024) {
          ++ok;
        } else {
          ADD_FAILURE() << "got '" << r.status_line << "', body " << r.body.size() << " bytes: " << raw.substr(0, 100);
        }
      }
    });
  }
  for (auto& c : clients) c.join();
  EXPECT_EQ(ok.load(), 80);
}

TEST(HttpServer, ClientsOverTheLimitWaitInsteadOfBeingReset) {
  HttpServerOptions o = ephemeral();
  o.max_connections = 1;
  HttpServer server(o, [] { return kBody; });
  ASSERT_EQ(server.start(), "");
  const int idle = connect_to(server.port());
  ASSERT_GE(idle, 0);
  ASSERT_EQ(::send(idle, "GET", 3, MSG_NOSIGNAL), 3);
  std::string second;
  std::thread client([&] { second = exchange(server.port(), "GET /metrics HTTP/1.1\r\n\r\n"); });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  ::close(idle);  // frees the one slot
  client.join();
  EXPECT_EQ(parse(second).body, kBody) << second;
}

}  // namespace
}  // namespace zernel::telemetry
