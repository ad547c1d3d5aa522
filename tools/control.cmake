# The control plane: the server the scheduler links (zernel_control) and its client
# (zernelctl). Included from the top-level CMakeLists.txt.
add_library(zernel_control STATIC ${PROJECT_SOURCE_DIR}/scheduler/control.cpp)
target_include_directories(zernel_control PUBLIC ${PROJECT_SOURCE_DIR})
target_link_libraries(zernel_control PUBLIC Threads::Threads)
target_compile_options(zernel_control PRIVATE ${ZERNEL_WARNINGS})

# The client shares only the header-only protocol with the server.
add_executable(zernelctl ${PROJECT_SOURCE_DIR}/tools/zernelctl.cpp)
target_include_directories(zernelctl PRIVATE ${PROJECT_SOURCE_DIR})
target_link_libraries(zernelctl PRIVATE CLI11::CLI11)
target_compile_options(zernelctl PRIVATE ${ZERNEL_WARNINGS})
