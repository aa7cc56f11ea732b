# The tests need GoogleTest; the lessons do not. MP_TESTS=AUTO (the default) builds them when GoogleTest is
# found, so that scripts/tour.sh, which installs only what the lessons need, configures and builds the
# lessons alone; ON (scripts/build.sh and scripts/test.sh) requires them, as OFF leaves them out.
set(MP_TESTS AUTO CACHE STRING "Build the tests: AUTO (when GoogleTest is found), ON (required) or OFF")
set_property(CACHE MP_TESTS PROPERTY STRINGS AUTO ON OFF)
set(GOOGLETEST_SOURCE_DIR "/usr/src/googletest" CACHE PATH "GoogleTest source tree used when find_package(GTest) fails")
set(mp_with_tests OFF)
if(NOT MP_TESTS STREQUAL "OFF")
  find_package(GTest QUIET)
  if(NOT GTest_FOUND AND (MP_TESTS STREQUAL "ON" OR EXISTS ${GOOGLETEST_SOURCE_DIR}/CMakeLists.txt))
    # Configure-time sub-build of GoogleTest from a source tree (Debian's googletest package, or a copy).
    configure_file(CMakeLists.txt.in ${CMAKE_BINARY_DIR}/googletest-build/CMakeLists.txt @ONLY)
    execute_process(COMMAND ${CMAKE_COMMAND} -G "${CMAKE_GENERATOR}" .
                    WORKING_DIRECTORY ${CMAKE_BINARY_DIR}/googletest-build RESULT_VARIABLE gtest_rc)
    execute_process(COMMAND ${CMAKE_COMMAND} --build . WORKING_DIRECTORY ${CMAKE_BINARY_DIR}/googletest-build
                    RESULT_VARIABLE gtest_build_rc)
    if(gtest_rc OR gtest_build_rc)
      message(FATAL_ERROR "GoogleTest: no package and no usable source at GOOGLETEST_SOURCE_DIR=${GOOGLETEST_SOURCE_DIR}")
    endif()
    set(GTest_ROOT ${CMAKE_BINARY_DIR}/googletest-install)
    # Whoever disabled the package search (scripts/gpu-check.sh does) meant the system's, not this one.
    set(CMAKE_DISABLE_FIND_PACKAGE_GTest OFF)
    find_package(GTest REQUIRED CONFIG PATHS ${GTest_ROOT} NO_DEFAULT_PATH)
  endif()
  if(GTest_FOUND)
    set(mp_with_tests ON)
  endif()
endif()
if(mp_with_tests)
  include(GoogleTest)
else()
  message(STATUS "Tests: not built, GoogleTest not found (lessons only; scripts/test.sh installs what the tests need)")
endif()
# Whether this build folder has the tests: scripts/build.sh configures again when it has not.
set(MP_TESTS_BUILT ${mp_with_tests} CACHE INTERNAL "")
enable_testing()
