#include "scheduler/preflight.h"

#include <sys/utsname.h>

#include <chrono>
#include <fstream>
#include <string>
#include <thread>

namespace zernel {
namespace {

std::string read_line(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::string s;
  std::getline(in, s);
  return s;
}

}  // namespace

std::string sched_ext_state(const std::filesystem::path& sysfs_root) {
  return read_line(sysfs_root / "kernel/sched_ext/state");
}

std::string loaded_scheduler(const std::filesystem::path& sysfs_root) {
  return read_line(sysfs_root / "kernel/sched_ext/root/ops");
}

bool wait_until_free(const std::filesystem::path& sysfs_root, double seconds) {
  const auto deadline = std::chrono::steady_clock::now() +
                        std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                            std::chrono::duration<double>(seconds));
  for (;;) {
    const std::string state = sched_ext_state(sysfs_root);
    if (state == "disabled" || state.empty()) return state == "disabled";
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

std::string preflight(const std::filesystem::path& sysfs_root, uid_t euid) {
  if (euid != 0)
    return "must run as root (it loads a BPF scheduler into the kernel); fix: sudo zernel-scheduler ...";

  const std::filesystem::path scx = sysfs_root / "kernel/sched_ext";
  std::error_code ec;
  if (!std::filesystem::is_directory(scx, ec)) {
    utsname u{};
    uname(&u);
    return "this kernel (" + std::string(u.release) + ") has no sched_ext: " + scx.string() +
           " is missing (needs CONFIG_SCHED_CLASS_EXT=y, Linux 6.12+); fix: run it in the test VM "
           "with tools/run.sh, or boot a sched_ext kernel";
  }

  const std::string state = sched_ext_state(sysfs_root);
  if (state != "disabled") {
    std::string ops = loaded_scheduler(sysfs_root);
    if (ops.empty()) ops = "unknown";
    return "another sched_ext scheduler is loaded: " + ops + " (" + scx.string() + "/state is " +
           (state.empty() ? "unreadable" : state) + "); fix: stop " + ops +
           " first (Ctrl-C or SIGINT to it), or pass --wait-free SECONDS to wait for it";
  }
  return {};
}

}  // namespace zernel
