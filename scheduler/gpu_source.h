// Where GPU utilization comes from: NVIDIA's NVML on machines with NVIDIA GPUs, or a small
// text file that a workload (or a test) writes, for machines without GPUs.
//
// Sampling model: poll() takes one sample of every GPU; the accessors answer from the
// latest sample, so one evaluation window sees one consistent picture and a slow driver
// call is paid once per general.gpu_poll_interval_ms, not once per question. Before the
// first poll() a source reports no GPUs. Control path only: poll() may take milliseconds
// (NVML queries the driver) and allocates.
#pragma once

#include <cstddef>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace zernel {

class GpuSource {
 public:
  virtual ~GpuSource() = default;

  virtual std::string_view name() const = 0;  // "nvml" or "file", for logs and metrics

  // Takes a new sample. Returns false when nothing could be sampled (the sample is then
  // empty: no GPUs), true otherwise, including for a partly failed sample.
  virtual bool poll() = 0;

  // GPUs in the sample; valid indices are 0..count()-1.
  virtual int count() = 0;

  // Busy percentage (0..100) of a GPU over the driver's last sampling period, or nullopt
  // when the index is out of range or the GPU could not be read.
  virtual std::optional<double> utilization_pct(int gpu_index) = 0;

  // Processes with a compute context on the GPU. May be empty even when processes use it:
  // NVML inside a container sees only that container's pids, and some drivers refuse.
  virtual std::vector<int> pids_on_gpu(int gpu_index) = 0;

  // The GPU's NUMA node when the source knows it better than PCI sysfs (the simulated
  // source, whose GPUs have no PCI device); nullopt = ask the topology.
  virtual std::optional<int> numa_node(int gpu_index) {
    (void)gpu_index;
    return std::nullopt;
  }
};

// The simulated source, for machines without GPUs (VM tests, benchmarks, CI).
//
// The file is text, one GPU per line:
//     gpu <index> util <pct> [node <n>] [pids <pid>,<pid>,...]
// e.g. "gpu 0 util 93.5 node 1 pids 4242,4243". index is 0..1023, pct 0..100, pids
// positive; node (0..4095) is the NUMA node the simulated GPU hangs off, which a real GPU
// gets from PCI sysfs (topology/), so that placement can be tested without one.
// Blank lines and lines starting with '#' are ignored. count() is the highest index + 1;
// an index without a line has unknown utilization. A line that does not parse (or repeats
// an index) is skipped and counted in malformed_lines(), never fatal: a workload with a
// bug must not take the scheduler's GPU view down with it.
//
// Partial writes: a final line without its '\n' is taken to be still being written and
// ignored (counted in partial_lines(), not malformed_lines()). Writers should still write a
// temporary file in the same directory and rename() it over the path, which readers see
// atomically as the old or the new file; the trailing-newline rule only makes a writer
// that truncates and rewrites in place mostly harmless. A missing file means no GPUs.
class FileGpuSource final : public GpuSource {
 public:
  static constexpr std::string_view kDefaultPath = "/run/zernel/gpu_sim";
  static constexpr int kMaxGpus = 1024;

  explicit FileGpuSource(std::filesystem::path path = std::filesystem::path(kDefaultPath));

  std::string_view name() const override { return "file"; }
  bool poll() override;
  int count() override { return static_cast<int>(gpus_.size()); }
  std::optional<double> utilization_pct(int gpu_index) override;
  std::vector<int> pids_on_gpu(int gpu_index) override;
  std::optional<int> numa_node(int gpu_index) override;

  const std::filesystem::path& path() const { return path_; }
  // Of the last poll().
  std::size_t malformed_lines() const { return malformed_; }
  std::size_t partial_lines() const { return partial_; }

  // The parser, exposed so tests need no file: replaces the sample with `text`.
  void parse(std::string_view text);

 private:
  struct Gpu {
    bool present = false;
    double util = 0;
    std::vector<int> pids;
    std::optional<int> node;
  };

  std::filesystem::path path_;
  std::vector<Gpu> gpus_;
  std::size_t malformed_ = 0;
  std::size_t partial_ = 0;
};

// NVIDIA's management library, loaded with dlopen() at run time rather than linked: the
// scheduler must start on machines without the NVIDIA driver, and the library ships with
// the driver, not with us. The few NVML types and entry points used are declared in
// gpu_source.cpp, because Debian main has no NVIDIA headers (nvml.h is in the non-free
// CUDA toolkit) and the NVML C ABI of these calls has been stable since the _v2 names.
class NvmlGpuSource final : public GpuSource {
 public:
  static constexpr const char* kLibrary = "libnvidia-ml.so.1";

  // Loads the library and initializes NVML. Returns nullptr (and a one-line reason in
  // *error, if given) when the library is missing, a required symbol is missing, or
  // nvmlInit fails (driver not loaded, no GPUs the library can talk to).
  static std::unique_ptr<NvmlGpuSource> open(std::string* error = nullptr,
                                             const char* library = kLibrary);
  ~NvmlGpuSource() override;
  NvmlGpuSource(const NvmlGpuSource&) = delete;
  NvmlGpuSource& operator=(const NvmlGpuSource&) = delete;

  std::string_view name() const override { return "nvml"; }
  bool poll() override;
  int count() override { return static_cast<int>(sample_.size()); }
  std::optional<double> utilization_pct(int gpu_index) override;
  std::vector<int> pids_on_gpu(int gpu_index) override;

  struct Api;  // the resolved entry points (gpu_source.cpp)

 private:
  struct Gpu {
    std::optional<double> util;
    std::vector<int> pids;
  };
  NvmlGpuSource(void* handle, std::unique_ptr<Api> api);

  void* handle_;
  std::unique_ptr<Api> api_;
  std::vector<Gpu> sample_;
};

// NVML when it loads and sees at least one GPU, else the file source at `sim_path`.
// `nvml_library` is injectable so tests can make NVML absent. If `why` is given it gets one
// line saying which source was chosen and, for the file source, why NVML was not.
std::unique_ptr<GpuSource> make_gpu_source(
    const std::filesystem::path& sim_path = std::filesystem::path(FileGpuSource::kDefaultPath),
    const char* nvml_library = NvmlGpuSource::kLibrary, std::string* why = nullptr);

}  // namespace zernel
