# Unit tests of telemetry/ (included from tests/CMakeLists.txt).

# Debian's python3-prometheus-client installs into /usr/lib/python3/dist-packages, which
# only Debian's own interpreter searches; a pyenv or venv python3 earlier on PATH would
# not find it. Prefer /usr/bin/python3, fall back to PATH.
find_program(ZERNEL_SYSTEM_PYTHON3 NAMES python3 PATHS /usr/bin NO_DEFAULT_PATH)
if(NOT ZERNEL_SYSTEM_PYTHON3)
  find_program(ZERNEL_SYSTEM_PYTHON3 NAMES python3 REQUIRED)
endif()

zernel_unit_test(histogram_test unit/histogram_test.cpp unit/alloc_counter.cpp)
target_link_libraries(histogram_test PRIVATE zernel_telemetry)

# The exporter's text goes through prometheus_client's parser (a parser we did not write).
zernel_unit_test(prometheus_test unit/prometheus_test.cpp)
target_link_libraries(prometheus_test PRIVATE zernel_telemetry)
target_compile_definitions(prometheus_test PRIVATE
  ZERNEL_PYTHON3="${ZERNEL_SYSTEM_PYTHON3}"
  ZERNEL_PROM_PARSE_CHECK="${CMAKE_CURRENT_SOURCE_DIR}/unit/prom_parse_check.py")

zernel_unit_test(http_server_test unit/http_server_test.cpp)
target_link_libraries(http_server_test PRIVATE zernel_telemetry)

# The trace file goes through Python's json module.
zernel_unit_test(trace_test unit/trace_test.cpp unit/alloc_counter.cpp)
target_link_libraries(trace_test PRIVATE zernel_telemetry)
target_compile_definitions(trace_test PRIVATE ZERNEL_PYTHON3="${ZERNEL_SYSTEM_PYTHON3}")

# The observer lives in zernel_bpf (with libbpf); this test needs only its own source.
zernel_unit_test(dispatch_observer_test unit/dispatch_observer_test.cpp ${PROJECT_SOURCE_DIR}/scheduler/dispatch_observer.cpp)
target_link_libraries(dispatch_observer_test PRIVATE zernel_telemetry)
