// HttpServer: the smallest HTTP/1.1 server that Prometheus can scrape. It answers
// GET (and HEAD) /metrics with the text a callback returns, 404 for any other path, 405
// for any other method, 431 for a request over the size limit, one request per
// connection (Connection: close).
//
// It runs on its own thread: non-blocking sockets and one poll() loop, woken by an
// eventfd to stop. The body callback runs on that thread, so it must not touch the
// dispatcher's state directly (SchedulerMetrics::serialize() reads atomics; the agent
// keeps the latest text under a mutex). A slow or silent client costs one socket until
// its timeout, never the scheduler: nothing here is on the hot path.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <thread>

namespace zernel::telemetry {

struct HttpServerOptions {
  std::string address = "127.0.0.1";  // numeric IPv4 or IPv6 address to bind
  std::uint16_t port = 9093;          // 0 = any free port (tests); read it back with port()
  std::size_t max_request_bytes = 8 * 1024;  // request line + headers; larger gets 431
  std::size_t max_connections = 32;          // more wait in the listen backlog
  std::chrono::milliseconds io_timeout{5000};  // a connection idle this long is closed
};

class HttpServer {
 public:
  using BodyFn = std::function<std::string()>;

  HttpServer(HttpServerOptions options, BodyFn body);
  ~HttpServer();  // stop()
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds and listens on the caller's thread, so that a taken port is reported here, then
  // starts the server thread. Empty on success, else one line with the cause and the fix:
  //   "cannot listen on 127.0.0.1:9093: Address already in use; fix: set [telemetry]
  //    metrics_port or stop the other process"
  std::string start();

  // Stops the thread and closes every socket; open requests are dropped. Idempotent.
  void stop();

  bool running() const { return thread_.joinable(); }
  // The bound port (the real one when the options asked for 0). 0 before start().
  std::uint16_t port() const { return port_; }

 private:
  void run();

  HttpServerOptions opts_;
  BodyFn body_;
  int listen_fd_ = -1;
  int wake_fd_ = -1;
  std::uint16_t port_ = 0;
  std::thread thread_;
};

}  // namespace zernel::telemetry
