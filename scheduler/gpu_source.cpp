#include "scheduler/text_parse.h"
#include "scheduler/gpu_source.h"

#include <dlfcn.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <fstream>
#include <sstream>

namespace zernel {
namespace {

// --- The slice of NVML's C ABI we use (see the class comment for why it is declared here).
// Layouts and values are from nvml.h; they are part of NVIDIA's stable ABI.
extern "C" {
using nvmlReturn_t = int;  // a C enum in nvml.h, so int-sized
struct nvmlDevice_st;
using nvmlDevice_t = nvmlDevice_st*;
struct nvmlUtilization_t {
  unsigned int gpu;     // percent of the last sample period a kernel was running
  unsigned int memory;  // percent of it the memory was being read or written
};
// nvmlDeviceGetComputeRunningProcesses (v1) fills the two-field struct; _v2 and _v3 fill
// the four-field one. Mixing them up would misread every entry after the first.
struct nvmlProcessInfo_v1_t {
  unsigned int pid;
  unsigned long long usedGpuMemory;
};
struct nvmlProcessInfo_v2_t {
  unsigned int pid;
  unsigned long long usedGpuMemory;
  unsigned int gpuInstanceId;
  unsigned int computeInstanceId;
};
}
constexpr nvmlReturn_t kNvmlSuccess = 0;
constexpr nvmlReturn_t kNvmlInsufficientSize = 7;

template <typename Fn>
Fn symbol(void* handle, const char* name) {
  return reinterpret_cast<Fn>(dlsym(handle, name));
}

std::vector<std::string_view> split_ws(std::string_view line) {
  std::vector<std::string_view> out;
  std::size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
    std::size_t j = i;
    while (j < line.size() && line[j] != ' ' && line[j] != '\t') ++j;
    if (j > i) out.push_back(line.substr(i, j - i));
    i = j;
  }
  return out;
}

std::optional<std::vector<int>> parse_pids(std::string_view s) {
  std::vector<int> pids;
  while (true) {
    const std::size_t comma = s.find(',');
    auto pid = parse_number<int>(s.substr(0, comma));
    if (!pid || *pid <= 0) return std::nullopt;
    pids.push_back(*pid);
    if (comma == std::string_view::npos) break;
    s.remove_prefix(comma + 1);
  }
  return pids;
}

}  // namespace

// ------------------------------------------------------------------------------------------
// FileGpuSource

FileGpuSource::FileGpuSource(std::filesystem::path path) : path_(std::move(path)) {}

bool FileGpuSource::poll() {
  std::ifstream in(path_, std::ios::binary);
  if (!in) {
    gpus_.clear();
    malformed_ = partial_ = 0;
    return false;
  }
  std::ostringstream text;
  text << in.rdbuf();
  parse(text.str());
  return true;
}

void FileGpuSource::parse(std::string_view text) {
  gpus_.clear();
  malformed_ = partial_ = 0;
  while (!text.empty()) {
    const std::size_t nl = text.find('\n');
    if (nl == std::string_view::npos) {
      ++partial_;  // still being written: the next poll will see it whole
      break;
    }
    std::string_view line = text.substr(0, nl);
    text.remove_prefix(nl + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);

    const std::vector<std::string_view> tok = split_ws(line);
    if (tok.empty() || tok[0].front() == '#') continue;

    // gpu <index> util <pct>, then optional "node <n>" and "pids <list>", each at most once.
    bool shape_ok = tok.size() >= 4 && tok.size() % 2 == 0 && tok[0] == "gpu" && tok[2] == "util";
    const auto index = shape_ok ? parse_number<int>(tok[1]) : std::nullopt;
    const auto util = shape_ok ? parse_number<double>(tok[3]) : std::nullopt;
    std::optional<std::vector<int>> pids = std::vector<int>{};
    std::optional<int> node;
    bool seen_pids = false;
    for (std::size_t k = 4; shape_ok && k + 1 < tok.size(); k += 2) {
      if (tok[k] == "pids" && !seen_pids) {
        seen_pids = true;
        pids = parse_pids(tok[k + 1]);
      } else if (tok[k] == "node" && !node) {
        node = parse_number<int>(tok[k + 1]);
        if (!node || *node < 0 || *node > 4095) shape_ok = false;
      } else {
        shape_ok = false;
      }
    }
    if (!shape_ok || !index || *index < 0 || *index >= kMaxGpus || !util || !std::isfinite(*util) ||
        *util < 0 || *util > 100 || !pids) {
      ++malformed_;
      continue;
    }
    if (static_cast<std::size_t>(*index) >= gpus_.size()) gpus_.resize(*index + 1);
    Gpu& g = gpus_[*index];
    if (g.present) {  // which of two lines is right is a guess; keep the first
      ++malformed_;
      continue;
    }
    g = Gpu{true, *util, std::move(*pids), node};
  }
}

std::optional<double> FileGpuSource::utilization_pct(int gpu_index) {
  if (gpu_index < 0 || gpu_index >= count() || !gpus_[gpu_index].present) return std::nullopt;
  return gpus_[gpu_index].util;
}

std::vector<int> FileGpuSource::pids_on_gpu(int gpu_index) {
  if (gpu_index < 0 || gpu_index >= count()) return {};
  return gpus_[gpu_index].pids;
}

std::optional<int> FileGpuSource::numa_node(int gpu_index) {
  if (gpu_index < 0 || gpu_index >= count()) return std::nullopt;
  return gpus_[gpu_index].node;
}

// ------------------------------------------------------------------------------------------
// NvmlGpuSource

struct NvmlGpuSource::Api {
  nvmlReturn_t (*init)() = nullptr;
  nvmlReturn_t (*shutdown)() = nullptr;
  nvmlReturn_t (*get_count)(unsigned int*) = nullptr;
  nvmlReturn_t (*get_handle)(unsigned int, nvmlDevice_t*) = nullptr;
  nvmlReturn_t (*get_utilization)(nvmlDevice_t, nvmlUtilization_t*) = nullptr;
  // Optional: at most one of the two is set, the newest the library has.
  nvmlReturn_t (*get_procs_v2)(nvmlDevice_t, unsigned int*, nvmlProcessInfo_v2_t*) = nullptr;
  nvmlReturn_t (*get_procs_v1)(nvmlDevice_t, unsigned int*, nvmlProcessInfo_v1_t*) = nullptr;
  const char* (*error_string)(nvmlReturn_t) = nullptr;

  std::string describe(nvmlReturn_t rc) const {
    const char* s = error_string != nullptr ? error_string(rc) : nullptr;
    return s != nullptr ? std::string(s) : "NVML error " + std::to_string(rc);
  }

  // Fills `out` with the pids; false if the library cannot say.
  template <typename Info, typename Fn>
  static bool running_pids(Fn fn, nvmlDevice_t dev, std::vector<int>& out) {
    std::vector<Info> infos(64);
    for (int attempt = 0; attempt < 2; ++attempt) {
      unsigned int n = static_cast<unsigned int>(infos.size());
      const nvmlReturn_t rc = fn(dev, &n, infos.data());
      if (rc == kNvmlInsufficientSize) {  // n is now the number needed; processes come and go
        infos.resize(n + 16);
        continue;
      }
      if (rc != kNvmlSuccess) return false;
      for (unsigned int i = 0; i < std::min<std::size_t>(n, infos.size()); ++i) {
        out.push_back(static_cast<int>(infos[i].pid));
      }
      return true;
    }
    return false;
  }
};

std::unique_ptr<NvmlGpuSource> NvmlGpuSource::open(std::string* error, const char* library) {
  auto fail = [&](std::string msg) -> std::unique_ptr<NvmlGpuSource> {
    if (error != nullptr) *error = std::move(msg);
    return nullptr;
  };
  // RTLD_LOCAL: NVML's symbols must not satisfy anyone else's lookups in our process.
  void* handle = dlopen(library, RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    const char* why = dlerror();
    return fail(std::string("NVML not available: ") + (why != nullptr ? why : library));
  }
  auto api = std::make_unique<Api>();
  api->init = symbol<decltype(api->init)>(handle, "nvmlInit_v2");
  api->shutdown = symbol<decltype(api->shutdown)>(handle, "nvmlShutdown");
  api->get_count = symbol<decltype(api->get_count)>(handle, "nvmlDeviceGetCount_v2");
  api->get_handle = symbol<decltype(api->get_handle)>(handle, "nvmlDeviceGetHandleByIndex_v2");
  api->get_utilization =
      symbol<decltype(api->get_utilization)>(handle, "nvmlDeviceGetUtilizationRates");
  api->error_string = symbol<decltype(api->error_string)>(handle, "nvmlErrorString");
  api->get_procs_v2 =
      symbol<decltype(api->get_procs_v2)>(handle, "nvmlDeviceGetComputeRunningProcesses_v3");
  if (api->get_procs_v2 == nullptr) {
    api->get_procs_v2 =
        symbol<decltype(api->get_procs_v2)>(handle, "nvmlDeviceGetComputeRunningProcesses_v2");
  }
  if (api->get_procs_v2 == nullptr) {
    api->get_procs_v1 =
        symbol<decltype(api->get_procs_v1)>(handle, "nvmlDeviceGetComputeRunningProcesses");
  }
  if (api->init == nullptr || api->shutdown == nullptr || api->get_count == nullptr ||
      api->get_handle == nullptr || api->get_utilization == nullptr) {
    dlclose(handle);
    return fail(std::string(library) + " lacks a required NVML function (driver too old?)");
  }
  if (const nvmlReturn_t rc = api->init(); rc != kNvmlSuccess) {
    std::string why = api->describe(rc);
    dlclose(handle);
    return fail("nvmlInit failed: " + why);
  }
  return std::unique_ptr<NvmlGpuSource>(new NvmlGpuSource(handle, std::move(api)));
}

NvmlGpuSource::NvmlGpuSource(void* handle, std::unique_ptr<Api> api)
    : handle_(handle), api_(std::move(api)) {}

NvmlGpuSource::~NvmlGpuSource() {
  api_->shutdown();
  dlclose(handle_);
}

bool NvmlGpuSource::poll() {
  sample_.clear();
  unsigned int n = 0;
  if (api_->get_count(&n) != kNvmlSuccess) return false;
  sample_.resize(std::min<unsigned int>(n, FileGpuSource::kMaxGpus));
  for (unsigned int i = 0; i < sample_.size(); ++i) {
    // NVML's index order is PCI bus order, the same as topology's Gpu::index.
    nvmlDevice_t dev = nullptr;
    if (api_->get_handle(i, &dev) != kNvmlSuccess) continue;  // e.g. a GPU fallen off the bus
    nvmlUtilization_t u{};
    if (api_->get_utilization(dev, &u) == kNvmlSuccess) sample_[i].util = u.gpu;
    if (api_->get_procs_v2 != nullptr) {
      Api::running_pids<nvmlProcessInfo_v2_t>(api_->get_procs_v2, dev, sample_[i].pids);
    } else if (api_->get_procs_v1 != nullptr) {
      Api::running_pids<nvmlProcessInfo_v1_t>(api_->get_procs_v1, dev, sample_[i].pids);
    }
  }
  return true;
}

std::optional<double> NvmlGpuSource::utilization_pct(int gpu_index) {
  if (gpu_index < 0 || gpu_index >= count()) return std::nullopt;
  return sample_[gpu_index].util;
}

std::vector<int> NvmlGpuSource::pids_on_gpu(int gpu_index) {
  if (gpu_index < 0 || gpu_index >= count()) return {};
  return sample_[gpu_index].pids;
}

// ------------------------------------------------------------------------------------------

std::unique_ptr<GpuSource> make_gpu_source(const std::filesystem::path& sim_path,
                                           const char* nvml_library, std::string* why) {
  std::string nvml_error;
  if (auto nvml = NvmlGpuSource::open(&nvml_error, nvml_library)) {
    if (nvml->poll() && nvml->count() > 0) {
      if (why != nullptr) *why = "nvml: " + std::to_string(nvml->count()) + " GPU(s)";
      return nvml;
    }
    nvml_error = "NVML sees no GPUs";
  }
  if (why != nullptr) *why = "file " + sim_path.string() + " (" + nvml_error + ")";
  return std::make_unique<FileGpuSource>(sim_path);
}

}  // namespace zernel
