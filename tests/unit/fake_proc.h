// Builds a throwaway /proc-shaped tree in the kernel's own file formats (stat with its 52
// fields, status, a hybrid cgroup file, environ, maps, task/TID/comm), for the ML-process
// discovery tests and the monitor's. Each test lays out its own machine with these calls.
#pragma once

#include <cstdint>
#include <filesystem>
#include <initializer_list>
#include <string>

#include "tests/unit/fake_sysfs.h"

namespace zernel::testing {

class FakeProcTree {
 public:
  const std::filesystem::path& root() const { return fs_.root(); }

  // A process with its main thread. Field 22 of stat is the start time.
  void AddProcess(int pid, int ppid, const std::string& comm, int uid = 1000,
                  const std::string& cgroup = "/user.slice", std::uint64_t start_time = 1000) {
    const std::string d = std::to_string(pid);
    std::string stat = d + " (" + comm + ") S " + std::to_string(ppid);
    for (int field = 5; field <= 52; ++field) {
      stat += " " + (field == 22 ? std::to_string(start_time) : std::string("0"));
    }
    fs_.Write(d + "/stat", stat);
    fs_.Write(d + "/comm", comm);
    const std::string u = std::to_string(uid);
    fs_.Write(d + "/status", "Name:\t" + comm + "\nUmask:\t0022\nState:\tS (sleeping)\nUid:\t" + u + "\t" + u +
                                 "\t" + u + "\t" + u + "\nGid:\t0");
    // Hybrid layout: a v1 line before the v2 one.
    fs_.Write(d + "/cgroup", "1:name=systemd:/legacy\n0::" + cgroup);
    Thread(pid, pid, comm);
  }
  void Maps(int pid, std::initializer_list<std::string> files) {
    std::string text = "55d0c0a00000-55d0c0a21000 rw-p 00000000 00:00 0      [heap]\n";
    for (const auto& f : files) text += "7f0000000000-7f0000100000 r-xp 00000000 08:01 1234  " + f + "\n";
    fs_.Write(std::to_string(pid) + "/maps", text);
  }
  void Environ(int pid, std::initializer_list<std::string> vars) {
    std::string text;
    for (const auto& v : vars) text += v + std::string(1, '\0');
    fs_.Write(std::to_string(pid) + "/environ", text);
  }
  void Thread(int pid, int tid, const std::string& comm) {
    fs_.Write(std::to_string(pid) + "/task/" + std::to_string(tid) + "/comm", comm);
  }
  // A path under the root: "201" (a process exits), "200/task/210" (a thread does).
  void Delete(const std::string& rel) { fs_.Delete(rel); }

 private:
  FakeSysfs fs_;
};

}  // namespace zernel::testing
