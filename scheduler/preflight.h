// Checks that must pass before anything is loaded, each failing with one line that names
// the cause and the fix. The sysfs root is injectable so tests can fake a kernel.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <string>

namespace zernel {

// Empty when the kernel can take a sched_ext scheduler now; otherwise the error line.
std::string preflight(const std::filesystem::path& sysfs_root, uid_t euid);

// /sys/kernel/sched_ext/state ("disabled", "enabled", ...), or "" if unreadable.
std::string sched_ext_state(const std::filesystem::path& sysfs_root);

// Name of the loaded root scheduler (/sys/kernel/sched_ext/root/ops), or "".
std::string loaded_scheduler(const std::filesystem::path& sysfs_root);

// Waits up to `seconds` for sched_ext/state to read "disabled" (another scheduler being
// switched out); true once it does. Polls every 50 ms: a switch is a rare control event.
bool wait_until_free(const std::filesystem::path& sysfs_root, double seconds);

}  // namespace zernel
