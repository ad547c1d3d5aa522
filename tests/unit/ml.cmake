# Unit tests of the ML-policy building blocks (scheduler/ml.cmake).

zernel_unit_test(config_test unit/config_test.cpp)
target_link_libraries(config_test PRIVATE zernel_ml)

zernel_unit_test(phase_detector_test unit/phase_detector_test.cpp)
target_link_libraries(phase_detector_test PRIVATE zernel_ml)

zernel_unit_test(gpu_source_test unit/gpu_source_test.cpp)
target_link_libraries(gpu_source_test PRIVATE zernel_ml)
# A stand-in libnvidia-ml.so built from the same test file, so the NVML code path runs on
# machines without NVIDIA GPUs: the test dlopen()s it by path.
add_library(fake_nvml SHARED unit/gpu_source_test.cpp)
target_compile_definitions(fake_nvml PRIVATE ZERNEL_BUILD_FAKE_NVML)
target_compile_options(fake_nvml PRIVATE ${ZERNEL_TEST_WARNINGS})
add_dependencies(gpu_source_test fake_nvml)
target_compile_definitions(gpu_source_test PRIVATE
  ZERNEL_FAKE_NVML_PATH="$<TARGET_FILE:fake_nvml>")

zernel_unit_test(ml_process_test unit/ml_process_test.cpp)
target_link_libraries(ml_process_test PRIVATE zernel_ml)

zernel_unit_test(phase_policy_test unit/phase_policy_test.cpp)
target_link_libraries(phase_policy_test PRIVATE zernel_ml)

zernel_unit_test(ml_snapshot_test unit/ml_snapshot_test.cpp)
target_link_libraries(ml_snapshot_test PRIVATE zernel_ml Threads::Threads)

zernel_unit_test(ml_monitor_test unit/ml_monitor_test.cpp)
target_link_libraries(ml_monitor_test PRIVATE zernel_ml)
