# The control plane's tests. Included from tests/CMakeLists.txt, so relative paths in
# add_executable resolve against tests/; ours are spelled from this file's directory.

# The server in-process, on a temporary socket (unit; the peer-credential test forks a
# child that drops to uid 65534 and skips itself when not run as root).
zernel_unit_test(control_test ${CMAKE_CURRENT_LIST_DIR}/control_test.cpp)
target_link_libraries(control_test PRIVATE zernel_control)

# A ControlServer with fake handlers, for driving the real zernelctl binary.
add_executable(control_test_server ${CMAKE_CURRENT_LIST_DIR}/control_test_server.cpp)
target_link_libraries(control_test_server PRIVATE zernel_control)
target_compile_options(control_test_server PRIVATE ${ZERNEL_TEST_WARNINGS})

add_test(NAME zernelctl
  COMMAND ${CMAKE_CURRENT_LIST_DIR}/../host/zernelctl_test.sh
          $<TARGET_FILE:zernelctl> $<TARGET_FILE:control_test_server>)
set_tests_properties(zernelctl PROPERTIES LABELS host)

# zernel-switch.sh against a fake sched_ext sysfs and fake schedulers: no kernel needed.
add_test(NAME zernel_switch
  COMMAND ${CMAKE_CURRENT_LIST_DIR}/../host/zernel_switch_test.sh ${PROJECT_SOURCE_DIR}/tools/zernel-switch.sh)
set_tests_properties(zernel_switch PROPERTIES LABELS host)
