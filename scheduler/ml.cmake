# The ML policy: config file, phase detection, GPU sources, ML process and tenant
# discovery, the control-side monitor and the phase policy itself. Included from the
# top-level CMakeLists.txt.

find_package(tomlplusplus REQUIRED)  # Debian's libtomlplusplus-dev ships a CMake config

add_library(zernel_ml STATIC
  scheduler/config.cpp
  scheduler/phase_detector.cpp
  scheduler/gpu_source.cpp
  scheduler/ml_process.cpp
  scheduler/ml_monitor.cpp
  scheduler/phase_policy.cpp)
target_include_directories(zernel_ml PUBLIC ${PROJECT_SOURCE_DIR})
# dl: NVML is dlopen()ed at run time (gpu_source.cpp says why).
target_link_libraries(zernel_ml PUBLIC tomlplusplus::tomlplusplus zernel_topology ${CMAKE_DL_LIBS})
target_compile_options(zernel_ml PRIVATE ${ZERNEL_WARNINGS})
