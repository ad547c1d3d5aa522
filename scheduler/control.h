// The control server: the scheduler's end of zernelctl. A unix socket (default
// /run/zernel/scheduler.sock, mode 0600 in a 0700 directory) served by one thread of its
// own, never by the dispatcher: a slow or hostile client costs the control thread, not
// scheduling.
//
// Threads: on() and start() are called by the owner before serving; stop() (and the
// destructor) from the owner. Handlers run on the control thread, one at a time; whatever
// state they touch that the dispatcher also touches is theirs to make thread-safe (an
// atomic, or a request the dispatcher picks up between batches). A slow handler (trace
// for N seconds) holds up the other clients for that long; reading and writing never do
// (every connection is non-blocking, multiplexed by one poll(), with a deadline).
//
// Who may talk to it: the file mode is the first gate; SO_PEERCRED is the second, so a
// socket left readable by mistake still answers only root (and `allowed_uid`, so tests
// can run unprivileged).
#pragma once

#include <pthread.h>
#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <span>
#include <string>
#include <string_view>

#include "scheduler/control_protocol.h"

namespace zernel {

class ControlServer {
 public:
  using Response = control::Response;
  using Handler = std::function<Response(std::span<const std::string_view> args)>;

  // A client that has not sent its whole request (or read its whole answer) in this long
  // is answered with an error, if it is still listening, and closed.
  static constexpr std::chrono::milliseconds kDefaultIoTimeout{2000};
  // Connections served at once; more wait in the listen backlog.
  static constexpr std::size_t kMaxConnections = 16;

  explicit ControlServer(std::filesystem::path socket_path = std::string(control::kDefaultSocketPath),
                         uid_t allowed_uid = 0, std::chrono::milliseconds io_timeout = kDefaultIoTimeout);
  ~ControlServer();  // stop()
  ControlServer(const ControlServer&) = delete;
  ControlServer& operator=(const ControlServer&) = delete;

  // Registers the handler for `command` (args exclude the command word). Before start();
  // registering the same command again replaces the handler.
  void on(std::string command, Handler handler);

  // Creates the directory and socket and starts the control thread. False with a one-line
  // "<what>; fix: <how>" in *error if the socket cannot be created or another scheduler
  // answers on it; a socket file nobody listens on (a crashed scheduler's) is replaced.
  bool start(std::string* error);

  // Stops the thread (after the handler in progress, if any, returns), closes every
  // connection and removes the socket file if it is still ours. Idempotent.
  void stop();

  // For long handlers (a trace of N seconds): true once stop() was called, so they can
  // return early instead of holding up shutdown.
  bool stop_requested() const { return stopping_.load(std::memory_order_relaxed); }

  bool running() const { return thread_started_; }
  const std::filesystem::path& socket_path() const { return path_; }

  // The full answer to one request line (without its newline), as the thread would send
  // it: data lines, then "ok" or "error: ...". Runs the handler on the calling thread.
  std::string answer(std::string_view request_line) const;

 private:
  void serve();

  std::filesystem::path path_;
  uid_t allowed_uid_;
  std::chrono::milliseconds io_timeout_;
  std::map<std::string, Handler, std::less<>> handlers_;

  int listen_fd_ = -1;
  int wake_fd_ = -1;  // eventfd: stop() wakes the thread out of poll()
  dev_t sock_dev_ = 0;
  ino_t sock_ino_ = 0;  // the socket file we bound, so stop() never unlinks a successor's
  std::atomic<bool> stopping_{false};
  // A pthread rather than std::thread for its stack size: the agent mlockall()s, which
  // makes every stack resident, and 8 MiB for a thread that parses one line is waste.
  pthread_t thread_{};
  bool thread_started_ = false;
};

// True while a server (this program's or another's) accepts connections on `path`: what
// start() refuses to replace. --wait-free polls it, since a scheduler detaches from the
// kernel before it closes its control socket.
bool control_socket_answers(const std::filesystem::path& path);

}  // namespace zernel
