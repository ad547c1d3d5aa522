// zernel-tiny: loads tiny.bpf.c (sched_ext ops "zernel_tiny"), runs until SIGINT/SIGTERM or
// until the kernel unloads it, then detaches and prints why it ended. VM tests only.
// Exit: 0 stopped by a signal, 1 refused to start or unloaded by the kernel.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/types.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>

#include "zernel_abi.h"  // struct zernel_exit_info, used by the skeleton
#include "tiny.skel.h"

namespace {

volatile sig_atomic_t g_stop = 0;

void on_signal(int) { g_stop = 1; }

std::string read_line(const char* path) {
  std::ifstream f(path);
  std::string s;
  std::getline(f, s);
  return s;
}

int fail(const std::string& msg) {
  std::fprintf(stderr, "zernel-tiny: %s\n", msg.c_str());
  return 1;
}

}  // namespace

int main() {
  if (geteuid() != 0)
    return fail("must run as root (it loads a BPF scheduler into the kernel); fix: sudo zernel-tiny");

  const std::string state = read_line("/sys/kernel/sched_ext/state");
  if (state.empty())
    return fail("/sys/kernel/sched_ext/state is unreadable: this kernel has no sched_ext; "
                "fix: run it in the test VM (tests/vm/run-vm.sh)");
  if (state != "disabled") {
    std::string ops = read_line("/sys/kernel/sched_ext/root/ops");
    if (ops.empty()) ops = "unknown";
    return fail("another sched_ext scheduler is loaded: /sys/kernel/sched_ext/state is " + state +
                ", root/ops is " + ops + "; fix: stop " + ops + " first (SIGINT to it)");
  }

  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);

  tiny_bpf* skel = tiny_bpf__open_and_load();
  if (!skel)
    return fail(std::string("the kernel rejected the BPF scheduler (") + std::strerror(errno) +
                "); fix: see the libbpf lines above, use a sched_ext kernel with BTF");

  bpf_link* link = bpf_map__attach_struct_ops(skel->maps.tiny_ops);
  if (!link) {
    const int err = errno;
    tiny_bpf__destroy(skel);
    return fail(std::string("cannot attach (") + std::strerror(err) +
                "); fix: stop the sched_ext scheduler that attached first");
  }
  std::printf("zernel-tiny: attached\n");
  std::fflush(stdout);

  // Pairs with ops.exit, which writes kind last.
  auto exited = [&] { return __atomic_load_n(&skel->bss->exit_info.kind, __ATOMIC_ACQUIRE) != 0; };
  while (!g_stop && !exited()) usleep(100 * 1000);
  const bool kernel_exit = exited();

  bpf_link__destroy(link);  // synchronous: ops.exit has run when this returns
  zernel_exit_info info;
  std::memcpy(&info, const_cast<const zernel_exit_info*>(&skel->bss->exit_info), sizeof(info));
  info.reason[sizeof(info.reason) - 1] = '\0';
  info.msg[sizeof(info.msg) - 1] = '\0';
  tiny_bpf__destroy(skel);

  std::printf("EXIT: %s (%s)\n", info.kind ? info.reason : "detached", info.msg);
  std::fflush(stdout);
  return kernel_exit ? 1 : 0;
}
