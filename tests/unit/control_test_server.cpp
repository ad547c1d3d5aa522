// A ControlServer with fake handlers, so tests/host/zernelctl_test.sh can drive the real
// zernelctl binary without a scheduler (or a sched_ext kernel).
//
//   control_test_server SOCKET [--allow-uid UID] [--delay-ms MS]
//
// Prints "ready" once the socket answers; serves until SIGINT/SIGTERM, then removes it.
// Handlers: status (prints the policy), policy fair|fifo, trace SECONDS FILE (writes a
// fake trace at once). No reload, so that the unknown-command answer can be seen.
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <mutex>
#include <string>
#include <thread>

#include "scheduler/control.h"

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: control_test_server SOCKET [--allow-uid UID] [--delay-ms MS]\n");
    return 2;
  }
  uid_t allow = getuid();
  int delay_ms = 0;
  for (int i = 2; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--allow-uid") allow = static_cast<uid_t>(std::stoul(argv[i + 1]));
    else if (flag == "--delay-ms") delay_ms = std::stoi(argv[i + 1]);
  }

  // Blocked before the control thread exists, so sigwait() below is the only taker.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  using zernel::ControlServer;
  using Response = ControlServer::Response;
  ControlServer server(argv[1], allow);
  std::mutex mu;  // the agent's pattern: handlers share state with other threads under a lock
  std::string policy = "fair";

  server.on("status", [&](auto) {
    if (delay_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
    std::lock_guard lock(mu);
    return Response::ok({"policy=" + policy, "attached=1"});
  });
  server.on("policy", [&](auto args) {
    if (args[0] != "fair" && args[0] != "fifo")
      return Response::fail("unknown policy '" + std::string(args[0]) + "'", "use one of: fair, fifo");
    std::lock_guard lock(mu);
    std::string line = "policy: " + policy + " -> " + std::string(args[0]);
    policy = args[0];
    return Response::ok({line});
  });
  server.on("trace", [&](auto args) {
    const std::string file(args[1]);
    std::ofstream out(file);
    out << "fake trace of " << args[0] << " s\n";
    if (!out) return Response::fail("cannot write " + file, "pick a writable path");
    return Response::ok({"wrote " + file});
  });

  std::string error;
  if (!server.start(&error)) {
    std::fprintf(stderr, "control_test_server: %s\n", error.c_str());
    return 1;
  }
  std::printf("ready\n");
  std::fflush(stdout);
  int sig = 0;
  sigwait(&stop_signals, &sig);
  server.stop();
  return 0;
}
